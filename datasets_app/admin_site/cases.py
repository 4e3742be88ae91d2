"""Admin for cases and the requests to retire or unpin pinned ones, with decision buttons.

Thin by design: every lifecycle move is a service call, irreversible ones take a
confirmation step, and nothing governed is deleted from here.
"""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from datasets_app import services
from datasets_app.choices import CaseStatus, PinnedChange, RequestStatus, Tier
from datasets_app.conversations import conversation_of
from datasets_app.forms import CaseForm
from datasets_app.models import UNCLASSIFIED, Case, PinnedCaseRequest
from datasets_app.services import pinned
from evalproject.admin_actions import GovernedAdmin, confirm_action, run_each
from evalproject.decisions import Decision, DecisionsMixin, actions_for


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


class UnclassifiedFilter(admin.SimpleListFilter):
    title = "needs triage"
    parameter_name = "triage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("unclassified", "Unclassified (imported without a failure class)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Case]) -> QuerySet[Case]:
        if self.value() == "unclassified":
            return queryset.filter(failure_class__slug=UNCLASSIFIED)
        return queryset


def _no_open_request(case: Case) -> bool:
    return not case.pinned_requests.filter(status=RequestStatus.OPEN).exists()


def _audit_refusal(user: Any, case: Case, tier: str, statuses: tuple[str, ...]) -> Any:
    """Why ``user`` may not audit ``case`` into ``tier`` now: role, status, or the service's rule."""
    if not user.has_perm("datasets_app.audit_case"):
        return "You may not audit cases (the Reviewer and Dataset owner roles may)."
    if case.status not in statuses:
        return f"It is {case.get_status_display().lower()}."
    return services.audit_refusal(case, user, tier)


CASE_DECISIONS = [
    Decision(
        "submit",
        "Submit for review",
        lambda user, case, note: services.submit_case(case, actor=user),
        lambda user, case: user.has_perm("datasets_app.submit_case") and case.status == CaseStatus.DRAFT,
        explanation="The case goes to the reviewers; it counts in runs once one of them audits it.",
    ),
    Decision(
        "audit",
        "Audit and activate",
        lambda user, case, note: services.audit_case(case, actor=user, reason=note),
        why=lambda user, case: _audit_refusal(
            user, case, case.tier, (CaseStatus.DRAFT, CaseStatus.IN_REVIEW)
        ),
        explanation="You confirm the case is correct: it counts in every run from now on, and a trusted "
        "one decides releases. Your note goes into its history and the audit log.",
    ),
    Decision(
        "return",
        "Return to its author",
        lambda user, case, note: services.return_case(case, actor=user, note=note),
        lambda user, case: user.has_perm("datasets_app.audit_case") and case.status == CaseStatus.IN_REVIEW,
        reason_required=True,
        explanation="The case goes back to draft with your note, which its author sees on the case and "
        "on their Waiting for me page.",
    ),
    Decision(
        "promote",
        "Promote to trusted",
        lambda user, case, note: services.promote_case(case, actor=user, reason=note),
        why=lambda user, case: (
            "It is trusted already."
            if case.tier == Tier.TRUSTED
            else _audit_refusal(user, case, Tier.TRUSTED, (CaseStatus.ACTIVE,))
        ),
        explanation="Trusted cases decide releases.",
    ),
    Decision(
        "retire",
        "Retire",
        lambda user, case, note: services.retire_case(case, actor=user, reason=note),
        lambda user, case: (
            user.has_perm("datasets_app.retire_case")
            and not case.pinned
            and case.status != CaseStatus.RETIRED
        ),
        reason_required=True,
        danger=True,
        explanation="A retired case stops counting in runs; its history stays, and it can be restored.",
    ),
    Decision(
        "restore",
        "Restore",
        lambda user, case, note: services.restore_case(case, actor=user, reason=note),
        lambda user, case: user.has_perm("datasets_app.retire_case") and case.status == CaseStatus.RETIRED,
        reason_required=True,
        explanation="The case goes back to review and counts again once audited.",
    ),
    Decision(
        "ask-retire",
        "Ask to retire (pinned)",
        lambda user, case, note: services.request_pinned_change(
            case, actor=user, change=PinnedChange.RETIRE, reason=note
        ),
        lambda user, case: (
            user.has_perm("datasets_app.retire_case")
            and case.pinned
            and case.status != CaseStatus.RETIRED
            and _no_open_request(case)
        ),
        reason_required=True,
        explanation="A pinned case keeps an incident fixed: a second person (another dataset owner or an "
        "owner of a gate on the dataset) must confirm its retirement.",
    ),
    Decision(
        "ask-unpin",
        "Ask to unpin",
        lambda user, case, note: services.request_pinned_change(
            case, actor=user, change=PinnedChange.UNPIN, reason=note
        ),
        lambda user, case: (
            user.has_perm("datasets_app.retire_case") and case.pinned and _no_open_request(case)
        ),
        reason_required=True,
        explanation="A second person must confirm before the case stops being pinned.",
    ),
]


def _perm(codename: str) -> Any:
    return lambda user: user.has_perm(f"datasets_app.{codename}")


CASE_ACTION_PERMS = {
    "submit_for_review": _perm("submit_case"),
    "audit_and_activate": _perm("audit_case"),
    "promote_to_trusted": _perm("audit_case"),
    "demote": _perm("retire_case"),
    "retire": _perm("retire_case"),
    "restore": _perm("retire_case"),
    "ask_to_retire_pinned": _perm("retire_case"),
    "ask_to_unpin": _perm("retire_case"),
}


@admin.register(Case)
class CaseAdmin(DecisionsMixin, GovernedAdmin):
    form = CaseForm
    list_display = [
        "key",
        "dataset",
        "tier",
        "status",
        "failure_class_flagged",
        "risk",
        "pinned",
        "revision",
        "updated_at",
    ]
    list_filter = [
        "dataset",
        "tier",
        "status",
        "failure_class",
        "risk",
        "pinned",
        "source",
        UnclassifiedFilter,
    ]
    list_select_related = ["dataset", "failure_class"]
    search_fields = ["key"]
    raw_id_fields = ["incident"]
    show_full_result_count = False
    list_per_page = 100
    actions = [
        "submit_for_review",
        "audit_and_activate",
        "promote_to_trusted",
        "demote",
        "retire",
        "restore",
        "ask_to_retire_pinned",
        "ask_to_unpin",
    ]
    fieldsets = [
        (None, {"fields": ["dataset", "key", "failure_class", "tier", "risk", "pinned", "tags"]}),
        ("What the user asks", {"fields": ["conversation", "user_message", "input"]}),
        (
            "What success looks like",
            {
                "fields": [
                    "answer",
                    "contains",
                    "must_refuse",
                    "must_abstain",
                    "citations",
                    "tools",
                    "expected_summary",
                    "expected",
                ]
            },
        ),
        (
            "Governance",
            {
                "fields": [
                    "status",
                    "review_note",
                    "revision",
                    "source",
                    "incident",
                    "context_shown",
                    "contributed_by",
                    "audited_by",
                    "audited_at",
                ]
            },
        ),
    ]
    governance = [
        "status",
        "review_note",
        "revision",
        "source",
        "incident",
        "context_shown",
        "contributed_by",
        "audited_by",
        "audited_at",
    ]

    @admin.display(description="Observed where it came from")
    def context_shown(self, obj: Case) -> str:
        if not obj.context:
            return "-"
        text = json.dumps(obj.context, indent=2, ensure_ascii=False, default=str)
        return format_html('<pre class="result-json">{}</pre>', text)

    def get_decisions(self, request: HttpRequest, obj: Case) -> list[Decision]:
        return CASE_DECISIONS

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Offer an action only to people whose role allows it: no refusal after a confirmation.
        return actions_for(super().get_actions(request), CASE_ACTION_PERMS, request.user)

    def get_readonly_fields(self, request: HttpRequest, obj: Case | None = None) -> list[str]:
        readonly = ["conversation", "expected_summary", *self.governance]
        if obj is not None:
            readonly += ["dataset", "tier"]  # tier moves only through promote / demote
        return readonly

    def has_change_permission(self, request: HttpRequest, obj: Case | None = None) -> bool:
        if obj is not None and obj.status == CaseStatus.RETIRED:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Case, form: CaseForm, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            saved = services.add_case(
                dataset=data["dataset"],
                key=data["key"],
                failure_class=data["failure_class"],
                input=data["input"],
                expected=data["expected"],
                tier=data["tier"],
                risk=data["risk"],
                tags=data["tags"],
                pinned=data["pinned"],
                actor=request.user,
            )
        else:
            editable = {*Case.CONTENT_FIELDS, "key"}
            saved = services.edit_case(
                Case.objects.get(pk=obj.pk), actor=request.user, **{f: data[f] for f in editable if f in data}
            )
            if saved.status == CaseStatus.IN_REVIEW and obj.status == CaseStatus.ACTIVE:
                messages.warning(request, "This trusted case changed, so it is back in review until audited.")
        obj.pk, obj.status, obj.revision = saved.pk, saved.status, saved.revision

    @admin.display(description="Failure class", ordering="failure_class__slug")
    def failure_class_flagged(self, obj: Case) -> str:
        if obj.failure_class.slug == UNCLASSIFIED:
            return format_html('<strong style="color:#ba2121">{}</strong>', "unclassified: triage")
        return obj.failure_class.slug

    @admin.display(description="Conversation")
    def conversation(self, obj: Case) -> str:
        messages_ = (obj.input or {}).get("messages") or []
        lines = [(m.get("role"), m.get("content")) for m in messages_ if isinstance(m, dict)]
        # A multi-turn case: its scripted user turns, or who plays the user and what they want.
        played = conversation_of(obj.input)
        if played is not None and played.simulated:
            lines.append(
                ("simulated user", f"played by rubric {played.persona}, at most {played.max_turns} turns")
            )
            if played.scenario:
                lines.append(("scenario", played.scenario))
            if played.first_message:
                lines.append(("user (first turn)", played.first_message))
        elif played is not None:
            lines += [("user (scripted turn)", turn) for turn in played.turns]
        if not lines:
            return "-"
        return format_html_join("", '<p style="margin:0 0 .4em"><b>{}:</b> {}</p>', lines)

    @admin.display(description="Expected, in words")
    def expected_summary(self, obj: Case) -> str:
        expected = obj.expected or {}
        if not expected:
            return "Nothing yet: graders will skip this case."
        return format_html_join("", "<div><b>{}</b>: {}</div>", ((k, _short(v)) for k, v in expected.items()))

    @admin.action(description="Submit selected drafts for review")
    def submit_for_review(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        run_each(request, queryset, "Submitted", lambda c: services.submit_case(c, actor=request.user))

    @admin.action(description="Audit and activate selected cases")
    def audit_and_activate(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Audit and activate cases",
            verb="Audit and activate",
            explanation="You confirm each case is correct. Active cases count in every run; trusted "
            "ones decide releases. You cannot audit trusted cases you contributed or changed since "
            "their last audit. Your note is kept in the case's history and the audit log.",
            perform=lambda c, reason: services.audit_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Promote selected cases to the trusted tier")
    def promote_to_trusted(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Promote to trusted",
            verb="Promote",
            explanation="Trusted cases decide releases. You cannot promote cases you contributed "
            "or changed since their last audit.",
            perform=lambda c, reason: services.promote_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Demote selected cases to monitoring")
    def demote(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Demote to monitoring",
            verb="Demote",
            reason_required=True,
            perform=lambda c, reason: services.demote_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Retire selected cases")
    def retire(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Retire cases",
            verb="Retire",
            reason_required=True,
            explanation="Retired cases stop counting in runs. Their history stays. Pinned cases are "
            "retired only through a request that a second person confirms.",
            perform=lambda c, reason: services.retire_case(c, actor=request.user, reason=reason),
        )

    @admin.action(description="Restore selected retired cases (back to review)")
    def restore(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Restore retired cases",
            verb="Restore",
            reason_required=True,
            explanation="A restored case goes back to review and counts again once audited.",
            perform=lambda c, reason: services.restore_case(c, actor=request.user, reason=reason),
        )

    def _ask(self, request: HttpRequest, queryset: QuerySet[Case], change: str, title: str) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title=title,
            verb="Ask",
            reason_required=True,
            explanation="A pinned case keeps an incident fixed, so ending it takes two people: this "
            "asks; another dataset owner or an owner of a gate on the dataset confirms it (Pinned case "
            "requests). Nothing changes until then.",
            perform=lambda c, reason: services.request_pinned_change(
                c, actor=request.user, change=change, reason=reason
            ),
        )

    @admin.action(description="Ask to retire selected pinned cases (a second person confirms)")
    def ask_to_retire_pinned(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return self._ask(request, queryset, PinnedChange.RETIRE, "Ask to retire pinned cases")

    @admin.action(description="Ask to unpin selected cases (a second person confirms)")
    def ask_to_unpin(self, request: HttpRequest, queryset: QuerySet[Case]) -> Any:
        return self._ask(request, queryset, PinnedChange.UNPIN, "Ask to unpin cases")


PINNED_REQUEST_DECISIONS = [
    Decision(
        "confirm",
        "Confirm (I am the second person)",
        lambda user, r, note: services.confirm_pinned_change(r, actor=user, note=note),
        why=lambda user, r: pinned.decision_refusal(r, user),
        danger=True,
        explanation="The case is unpinned (and retired, when that was asked): it stops guarding its "
        "incident.",
    ),
    Decision(
        "decline",
        "Decline",
        lambda user, r, note: services.decline_pinned_change(r, actor=user, note=note),
        why=lambda user, r: pinned.decision_refusal(r, user),
        reason_required=True,
        explanation="The case stays pinned; your reason is kept with the request.",
    ),
    Decision(
        "withdraw",
        "Withdraw my request",
        lambda user, r, note: services.withdraw_pinned_change(r, actor=user),
        lambda user, r: r.status == RequestStatus.OPEN and r.requested_by_id == user.pk,
    ),
]


@admin.register(PinnedCaseRequest)
class PinnedCaseRequestAdmin(DecisionsMixin, admin.ModelAdmin):
    """Open requests to retire or unpin pinned cases, decided by a second person."""

    list_display = ["case", "change", "status", "requested_by", "requested_at", "reason", "decided_by"]
    list_filter = ["status", "change", "case__dataset"]
    list_select_related = ["case", "requested_by", "decided_by"]
    search_fields = ["case__key", "reason"]
    actions = ["confirm", "decline", "withdraw"]
    readonly_fields = [
        "case",
        "change",
        "status",
        "reason",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
    ]

    def get_decisions(self, request: HttpRequest, obj: PinnedCaseRequest) -> list[Decision]:
        return PINNED_REQUEST_DECISIONS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # asked from the case list (Ask to retire / unpin)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Confirm selected requests (you are the second person)")
    def confirm(self, request: HttpRequest, queryset: QuerySet[PinnedCaseRequest]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Confirm pinned case requests",
            verb="Confirm",
            explanation="Confirming unpins the case (and retires it, when that was asked): it stops "
            "guarding its incident. You cannot confirm your own request.",
            perform=lambda r, note: services.confirm_pinned_change(r, actor=request.user, note=note),
        )

    @admin.action(description="Decline selected requests")
    def decline(self, request: HttpRequest, queryset: QuerySet[PinnedCaseRequest]) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title="Decline pinned case requests",
            verb="Decline",
            reason_required=True,
            perform=lambda r, note: services.decline_pinned_change(r, actor=request.user, note=note),
        )

    @admin.action(description="Withdraw selected requests (yours)")
    def withdraw(self, request: HttpRequest, queryset: QuerySet[PinnedCaseRequest]) -> None:
        run_each(
            request, queryset, "Withdrew", lambda r: services.withdraw_pinned_change(r, actor=request.user)
        )
