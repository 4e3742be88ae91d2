"""Admin for rubrics and the sign-off of their versions (services decide; this only asks)."""

import difflib
import json
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from evalproject import charts as embed
from evalproject.admin_actions import GovernedAdmin, ReadOnlyInline, confirm_action
from evalproject.decisions import Decision, DecisionsMixin, actions_for
from evalproject.owners import OwnerFieldAdmin
from grading_app import charts, services
from grading_app.calibration import calibrate, human_pairs
from grading_app.choices import AlignmentStatus, RubricState
from grading_app.models import AlignmentProposal, Rubric, RubricVersion
from grading_app.services.alignment import (
    has_disagreements,
    proposal_refusal,
    propose_aligned_version,
    remeasure_alignment,
)
from grading_app.services.rubrics import EDITABLE_FIELDS, alignment_refusal


class RubricVersionInline(ReadOnlyInline):
    model = RubricVersion
    fields = ["number", "state", "model", "author", "created_at"]
    show_change_link = True


@admin.register(Rubric)
class RubricAdmin(OwnerFieldAdmin, GovernedAdmin):
    list_display = ["slug", "name", "owner", "updated_at"]
    list_select_related = ["owner"]
    search_fields = ["slug", "name"]
    owner_permission = "grading_app.change_rubric"
    filter_horizontal = ["co_owners"]
    inlines = [RubricVersionInline]

    def has_change_permission(self, request: HttpRequest, obj: Rubric | None = None) -> bool:
        # Who signs off is the owners' to say: others see the rubric read-only.
        if obj is not None and not request.user.is_superuser and request.user.pk not in obj.owner_ids():
            return False
        return super().has_change_permission(request, obj)


def _agreements(proposal: AlignmentProposal) -> str:
    """ ", people agree with v1 50%, with this draft 100% (n=6)" once measured."""
    m = proposal.measurement
    if proposal.status != AlignmentStatus.MEASURED or not m.get("n"):
        return ""

    def said(judge: dict[str, Any]) -> str:
        share, kappa = judge.get("agreement"), judge.get("kappa")
        return ("-" if share is None else f"{share:.0%}") + (
            " (kappa -)" if kappa is None else f" (kappa {kappa:.2f})"
        )

    return (
        f"; on {m['n']} held-out labels people agree with v{proposal.source.number} "
        f"{said(m['source'])}, with the draft {said(m['proposed'])}"
    )


def _proposal_report(proposal: AlignmentProposal, version: RubricVersion) -> str:
    source = reverse("admin:grading_app_rubricversion_change", args=[proposal.source_id])
    head = format_html(
        '<div>Proposed from <a href="{}">v{}</a> by {}: {} examples from disagreements, {} labelled '
        "cases held out to measure it. Status: <b>{}</b>{}.</div>",
        source,
        proposal.source.number,
        proposal.created_by,
        len(version.few_shot) - len(proposal.source.few_shot),
        len(proposal.held_out),
        proposal.get_status_display().lower(),
        _agreements(proposal),
    )
    if refusal := alignment_refusal(version):
        head += format_html('<div><strong style="color:#ba2121">{}</strong></div>', refusal)
    if proposal.error:
        head += format_html("<div>Last measurement failed: {}</div>", proposal.error)
    return head


def _fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, default=str)


def _version_decision(name: str, label: str, to: str, service: Any, **kw: Any) -> Decision:
    return Decision(
        name,
        label,
        lambda user, version, note: service(version, actor=user, note=note),
        why=lambda user, version: services.transition_refusal(version, user, to),
        **kw,
    )


VERSION_DECISIONS = [
    _version_decision(
        "submit",
        "Submit for sign-off",
        RubricState.SUBMITTED,
        services.submit_rubric_version,
        explanation="A submitted version can no longer change; an owner of the rubric other than "
        "its author signs it off.",
    ),
    _version_decision(
        "approve",
        "Approve (sign off)",
        RubricState.APPROVED,
        services.approve_rubric_version,
        explanation="Approved versions let their judges decide releases.",
    ),
    _version_decision(
        "reject",
        "Reject",
        RubricState.REJECTED,
        services.reject_rubric_version,
        reason_required=True,
        danger=True,
    ),
    _version_decision("retire", "Retire", RubricState.RETIRED, services.retire_rubric_version, danger=True),
]


ALIGNMENT_DECISIONS = [
    Decision(
        "propose_aligned",
        "Propose an aligned draft",
        lambda user, version, note: propose_aligned_version(version, actor=user),
        # Offered where there is something to learn from: a label that disagrees with the judge.
        why=lambda user, version: (
            proposal_refusal(version, user)
            or (
                ""
                if has_disagreements(version)
                else "No human label disagrees with this version's judge yet."
            )
        ),
        goto=lambda proposal: proposal.proposed,  # the new draft, where its measurement shows
        explanation="A new draft version shows the judge, as examples, cases where people's labels "
        "disagree with it. Its agreement with people is then measured on labelled cases held out "
        "from those examples; it can be signed off only after that.",
    ),
    Decision(
        "measure_alignment",
        "Measure on held-out labels again",
        lambda user, version, note: remeasure_alignment(version.alignment, actor=user),
        lambda user, version: (
            hasattr(version, "alignment")
            and (user.pk == version.author_id or user.pk in version.rubric.owner_ids())
        ),
        explanation="The draft's judge answers the held-out cases again, as the draft reads now.",
    ),
]


@admin.register(RubricVersion)
class RubricVersionAdmin(DecisionsMixin, admin.ModelAdmin):
    list_display = ["__str__", "rubric", "number", "state", "model", "author", "created_at"]
    list_filter = ["state", "rubric"]
    list_select_related = ["rubric", "author"]
    actions = ["submit", "approve", "reject", "retire"]
    # The confusion matrix sits beside the calibration table, on the same row.
    fields = [
        "rubric",
        "number",
        "state",
        "author",
        *EDITABLE_FIELDS,
        "events",
        "sign_off",
        "alignment_report",
        ("calibration", "judge_vs_human"),
        "compare",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: RubricVersion | None = None) -> list[str]:
        always = [
            "number",
            "state",
            "author",
            "events",
            "sign_off",
            "alignment_report",
            "calibration",
            "judge_vs_human",
            "compare",
        ]
        if obj is None:
            return always
        if obj.state != RubricState.DRAFT or (
            request.user.pk != obj.author_id and request.user.pk not in obj.rubric.owner_ids()
        ):
            return ["rubric", *always, *EDITABLE_FIELDS]  # submitted versions never change
        return ["rubric", *always]

    def get_decisions(self, request: HttpRequest, obj: RubricVersion) -> list[Decision]:
        return [*VERSION_DECISIONS, *ALIGNMENT_DECISIONS]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Deciding versions is for the owners of some rubric (the service checks which). Asked
        # once per request: a changelist asks for its actions three times.
        if not hasattr(request, "_evalgate_owns_rubric"):
            mine = Rubric.objects.filter(Q(owner=request.user) | Q(co_owners=request.user))
            request._evalgate_owns_rubric = mine.exists()
        owns = request._evalgate_owns_rubric
        allowed = {name: (lambda user: owns) for name in ("approve", "reject", "retire")}
        return actions_for(super().get_actions(request), allowed, request.user)

    def has_change_permission(self, request: HttpRequest, obj: RubricVersion | None = None) -> bool:
        # A submitted version never changes: its page is view-only and a POST is refused,
        # rather than reaching edit_rubric_version (which raises) and failing with a 500.
        if obj is not None and obj.state != RubricState.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RubricVersion, form: Any, change: bool) -> None:
        data = {f: form.cleaned_data[f] for f in EDITABLE_FIELDS if f in form.cleaned_data}
        if change:
            saved = services.edit_rubric_version(
                RubricVersion.objects.get(pk=obj.pk), actor=request.user, **data
            )
        else:
            saved = services.create_rubric_version(obj.rubric, actor=request.user, **data)
        obj.pk, obj.number, obj.state = saved.pk, saved.number, saved.state

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/compare/<int:other>/",
                view(self.compare_view),
                name="grading_app_rubricversion_compare",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Sign-off trail")
    def events(self, obj: RubricVersion) -> str:
        rows = obj.events.select_related("actor") if obj.pk else []
        return (
            format_html_join(
                "",
                "<div>{} &middot; {} &rarr; {} by <b>{}</b>: {}</div>",
                (
                    (
                        e.created_at.strftime("%Y-%m-%d %H:%M"),
                        e.from_state or "new",
                        e.to_state,
                        e.actor,
                        e.note,
                    )
                    for e in rows
                ),
            )
            or "-"
        )

    @admin.display(description="Who signs it off")
    def sign_off(self, obj: RubricVersion) -> str:
        if not obj.pk:
            return "-"
        if blocker := services.sign_off_blocker(obj):
            return format_html('<strong style="color:#ba2121">{}</strong>', blocker)
        names = ", ".join(u.get_username() for u in services.signers(obj))
        return f"Any owner of the rubric except its author: {names}."

    @admin.display(description="Alignment with people")
    def alignment_report(self, obj: RubricVersion) -> str:
        if not obj.pk:
            return "-"
        parts = []
        proposal = AlignmentProposal.objects.filter(proposed=obj).select_related("source").first()
        if proposal is not None:
            parts.append(_proposal_report(proposal, obj))
        for child in obj.alignment_proposals.select_related("proposed").order_by("-pk")[:5]:
            link = reverse("admin:grading_app_rubricversion_change", args=[child.proposed_id])
            parts.append(
                format_html(
                    '<div>Aligned draft <a href="{}">v{}</a>: {}{}</div>',
                    link,
                    child.proposed.number,
                    child.get_status_display().lower(),
                    _agreements(child),
                )
            )
        return format_html_join("", "{}", ((p,) for p in parts)) or "-"

    @admin.display(description="Calibration (judge vs people and code)")
    def calibration(self, obj: RubricVersion) -> str:
        if not obj.pk:
            return "-"
        result = calibrate(obj)

        def cell(summary: dict[str, Any]) -> tuple[int, str, str]:
            agree = "-" if summary["agreement"] is None else f"{summary['agreement']:.0%}"
            kappa = "-" if summary["kappa"] is None else f"{summary['kappa']:.2f}"
            return summary["n"], agree, kappa

        rows = [("human labels", *cell(result["human"]))]
        rows += [(f"code grader {slug}", *cell(s)) for slug, s in result["code"].items()]
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><thead><tr><th>compared with</th><th>n</th><th>agreement</th><th>Cohen's kappa</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="Judge vs human labels")
    def judge_vs_human(self, obj: RubricVersion) -> str:
        pairs = human_pairs(obj) if obj.pk else []
        if not pairs:
            return embed.empty("No human labels yet: reviewers label judged results in the review queue.")
        return embed.render(charts.confusion_matrix(pairs), height=380)

    @admin.display(description="Compare with")
    def compare(self, obj: RubricVersion) -> str:
        if not obj.pk:
            return "-"
        others = RubricVersion.objects.filter(rubric_id=obj.rubric_id).exclude(pk=obj.pk).order_by("-number")
        return (
            format_html_join(
                " ",
                '<a href="{}">v{}</a>',
                (
                    (reverse("admin:grading_app_rubricversion_compare", args=[obj.pk, o.pk]), o.number)
                    for o in others
                ),
            )
            or "-"
        )

    def compare_view(self, request: HttpRequest, pk: int, other: int) -> HttpResponse:
        """Side-by-side diff of two versions of the same rubric."""
        a = get_object_or_404(RubricVersion.objects.select_related("rubric", "endpoint"), pk=other)
        b = get_object_or_404(
            RubricVersion.objects.select_related("rubric", "endpoint"), pk=pk, rubric=a.rubric
        )
        differ = difflib.HtmlDiff(wrapcolumn=80)
        sections = []
        for field in EDITABLE_FIELDS:
            old, new = _fmt(getattr(a, field)), _fmt(getattr(b, field))
            if old != new:
                table = differ.make_table(old.splitlines(), new.splitlines(), f"v{a.number}", f"v{b.number}")
                sections.append((field, mark_safe(table)))  # HtmlDiff escapes the text it shows
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{a.rubric.slug}: v{a.number} → v{b.number}",
            "sections": sections,
            "a": a,
            "b": b,
        }
        return TemplateResponse(request, "admin/grading_app/rubric_compare.html", context)

    def _decide(self, request: HttpRequest, queryset: QuerySet, verb: str, service: Any, **kw: Any) -> Any:
        return confirm_action(
            self,
            request,
            queryset,
            title=f"{verb} rubric versions",
            verb=verb,
            perform=lambda v, note: service(v, actor=request.user, note=note),
            **kw,
        )

    @admin.action(description="Submit selected drafts for sign-off")
    def submit(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._decide(
            request,
            queryset,
            "Submit",
            services.submit_rubric_version,
            explanation="A submitted version can no longer change.",
        )

    @admin.action(description="Approve (sign off) selected versions")
    def approve(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._decide(
            request,
            queryset,
            "Approve",
            services.approve_rubric_version,
            explanation="Approved versions let their judges decide releases. "
            "An owner of the rubric (owner or co-owner) approves, never the version's author.",
        )

    @admin.action(description="Reject selected versions")
    def reject(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._decide(request, queryset, "Reject", services.reject_rubric_version, reason_required=True)

    @admin.action(description="Retire selected versions")
    def retire(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._decide(request, queryset, "Retire", services.retire_rubric_version)
