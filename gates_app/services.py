"""Writes that matter for gates: requesting checks, deciding verdicts, approvals, overrides."""

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from audit_app.choices import Action
from audit_app.services import record_event
from datasets_app.models import Case
from evalproject.queues import enqueue
from gates_app import metrics
from gates_app.choices import CheckStatus, DecisionKind, RuleMode, RuleStage, Verdict
from gates_app.evaluation import RuleSpec, evaluate
from gates_app.models import Check, CheckDecision, CheckUploadPage, DeployToken, Gate, GateRule
from grading_app.calibration import cohen_kappa, human_pairs
from grading_app.choices import RunStatus
from grading_app.models import Grader, HumanLabel, RubricVersion, RubricVersionEvent, Run
from grading_app.outputs import parse_outputs
from grading_app.results import CaseRow, iter_case_rows, load_pinned_not_run
from grading_app.services import add_outputs, cancel_run, open_run, start_run

logger = logging.getLogger(__name__)


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body (HTTP 422)."""


class IdempotencyInFlight(Exception):
    """The first request with this idempotency key is still being processed (HTTP 409)."""


def fingerprint(body: Any) -> str:
    """A stable hash of a request body: same JSON, same fingerprint, whatever the key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_fingerprint(
    candidate: str, outputs: Any, metadata: dict | None, outputs_pages: int = 0, trials: int = 1
) -> str:
    """What a check request asks, hashed: the same question gives the same fingerprint
    whether it came through the API (with or without an empty metadata) or a service call."""
    asked = {
        "candidate": candidate,
        "outputs": outputs,
        "metadata": metadata or {},
        "outputs_pages": outputs_pages or 0,
    }
    if trials != 1:  # keyed only when asked for: a request of one trial keeps its old fingerprint
        asked["trials"] = trials
    return fingerprint(asked)


def answered_check(gate: Gate, candidate: str, body_fingerprint: str) -> Check | None:
    """The latest decided check that answered exactly this request, if its answer still stands.

    It stands when its run succeeded (an infrastructure failure deserves a new try) and nothing
    that decides a verdict changed since it was requested: the gate and its rules, the
    dataset's cases, the graders, rubric sign-offs and human labels (calibration rules).
    """
    check = (
        Check.objects.filter(
            gate=gate,
            candidate=candidate,
            request_fingerprint=body_fingerprint,
            status=CheckStatus.DONE,
            run__status=RunStatus.SUCCEEDED,
            pages_expected=0,
        )
        .order_by("-created_at", "-pk")
        .first()
    )
    if check is None:
        return None
    since = check.created_at
    changed = (
        Gate.history.filter(id=gate.pk, history_date__gt=since).exists()
        or GateRule.history.filter(gate_id=gate.pk, history_date__gt=since).exists()
        or Case.history.filter(dataset_id=gate.dataset_id, history_date__gt=since).exists()
        or Grader.history.filter(history_date__gt=since).exists()
        or RubricVersionEvent.objects.filter(created_at__gt=since).exists()
        or (
            GateRule.objects.filter(gate=gate)
            .filter(Q(min_kappa__isnull=False) | Q(min_labels__isnull=False))
            .exists()
            and HumanLabel.objects.filter(created_at__gt=since).exists()
        )
    )
    return None if changed else check


def request_check(
    *,
    gate: Gate,
    candidate: str,
    outputs: Any,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str = "",
    token: DeployToken | None = None,
    actor: AbstractBaseUser | None = None,
    outputs_pages: int = 0,
    trials: int = 1,
) -> tuple[Check, bool]:
    """Start a check of ``candidate`` on ``gate``; returns (check, created).

    With ``outputs`` the run grades them; without, the gate's default target produces them,
    ``trials`` times per case (submitted outputs say their own trial).
    With ``outputs_pages`` (2 or more), ``outputs`` is the first page of that many: the run
    starts once gates_app.uploads has received the others. With an idempotency key, a repeat
    with the same body returns the first check; a repeat with another body raises
    IdempotencyConflict; while the first is still being processed, IdempotencyInFlight. The
    run's jobs start after commit.

    A request the gate has answered already (same candidate, outputs and metadata, a run that
    succeeded, and nothing that decides the verdict changed since) returns that decided check,
    approvals included: a CI job re-run after an approval is allowed without asking again.
    """
    body_fingerprint = request_fingerprint(candidate, outputs, metadata, outputs_pages, trials)
    if idempotency_key:  # cheap answer for retries, before validating the body again
        existing = Check.objects.filter(gate=gate, idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.request_fingerprint != body_fingerprint:
                raise IdempotencyConflict(idempotency_key)
            return existing, False
    if outputs is not None and (answered := answered_check(gate, candidate, body_fingerprint)) is not None:
        return answered, False
    if outputs is None and gate.default_target is None:
        raise ValidationError({"outputs": "This gate has no target to run: submit outputs."})
    if outputs_pages and outputs is None:
        raise ValidationError(
            {"outputs": "outputs_pages says the outputs come in pages: send the first one."}
        )
    items = parse_outputs(outputs) if outputs is not None else None
    try:
        with transaction.atomic():
            if idempotency_key:
                _claim_idempotency_key(gate, idempotency_key)
                existing = Check.objects.filter(gate=gate, idempotency_key=idempotency_key).first()
                if existing is not None:
                    if existing.request_fingerprint != body_fingerprint:
                        raise IdempotencyConflict(idempotency_key)
                    return existing, False
            if outputs_pages:
                run = open_run(dataset=gate.dataset, candidate=candidate, actor=actor)
                add_outputs(run, items)
            else:
                run = start_run(
                    dataset=gate.dataset,
                    candidate=candidate,
                    outputs=items,
                    target=None if items is not None else gate.default_target,
                    actor=actor,
                    trials=trials,
                )
            check = Check.objects.create(
                gate=gate,
                candidate=candidate,
                run=run,
                metadata=metadata or {},
                idempotency_key=idempotency_key,
                request_fingerprint=body_fingerprint,
                requested_by_token=token,
                requested_by_user=actor,
                pages_expected=outputs_pages,
            )
            if outputs_pages:
                CheckUploadPage.objects.create(
                    gate_check=check, number=1, fingerprint=fingerprint(outputs), outputs=len(items)
                )
            record_event(
                Action.CHECK_REQUESTED,
                actor=actor,
                obj=check,
                details={
                    "gate": gate.slug,
                    "candidate": candidate,
                    "run": run.pk,
                    "outputs": len(items) if items is not None else None,
                    "pages": outputs_pages or None,
                    "request_fingerprint": body_fingerprint,
                    "idempotency_key": idempotency_key,
                    "token": token.identity() if token else None,
                },
            )
    except IntegrityError:
        # The unique constraint is the backstop where no advisory lock exists (SQLite): a
        # concurrent request with the same key committed first.
        existing = Check.objects.filter(gate=gate, idempotency_key=idempotency_key).first()
        if existing is None:
            raise IdempotencyInFlight(idempotency_key) from None
        if existing.request_fingerprint != body_fingerprint:
            raise IdempotencyConflict(idempotency_key) from None
        return existing, False
    return check, True


def unapproved_rubrics(run: Run) -> dict[int, str]:
    """Grader id -> why its judge cannot decide a release: the rubric version the run used
    is not (or no longer) approved. Sign-off is what lets a judge gate releases."""
    pinned = {g["id"]: g["rubric_version"] for g in run.grader_snapshot if g.get("rubric_version")}
    versions = RubricVersion.objects.select_related("rubric").in_bulk(set(pinned.values()))
    return {
        grader_id: f"rubric {versions[vid].rubric.slug} v{versions[vid].number} is "
        f"{versions[vid].get_state_display().lower()}, not approved"
        for grader_id, vid in pinned.items()
        if vid in versions and not versions[vid].is_approved
    }


def _claim_idempotency_key(gate: Gate, key: str) -> None:
    """Hold this key for the transaction; a concurrent request holding it means "in flight" (409).

    On PostgreSQL a transaction-level advisory lock on (gate, key) says so at once instead of
    letting the second request wait on the unique index. SQLite runs one writer at a time
    (IMMEDIATE transactions), so there the second request simply sees the first's check.
    """
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(f"idempotency:{gate.pk}:{key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        if not cursor.fetchone()[0]:
            raise IdempotencyInFlight(key)


def uncalibrated(rule: GateRule, run: Run | None) -> str:
    """Why a judge rule's rubric version is not calibrated enough to decide, or "".

    ``min_labels`` and ``min_kappa`` ask for human labels of the version the run used, and
    Cohen's kappa of the judge against them; below either, the rule is undecided.
    """
    if run is None or (rule.min_kappa is None and rule.min_labels is None):
        return ""
    pinned = {g["id"]: g.get("rubric_version") for g in run.grader_snapshot}
    version = RubricVersion.objects.select_related("rubric").filter(pk=pinned.get(rule.grader_id)).first()
    if version is None:
        return "the rule asks for calibration, but its grader used no rubric version"
    pairs = human_pairs(version)
    name = f"rubric {version.rubric.slug} v{version.number}"
    if rule.min_labels is not None and len(pairs) < rule.min_labels:
        return f"{name} has {len(pairs)} human label(s); the rule needs {rule.min_labels}"
    if rule.min_kappa is not None:
        kappa = cohen_kappa(pairs)
        if kappa is None:
            return f"{name}: Cohen's kappa with human labels is undefined ({len(pairs)} label(s))"
        if kappa < rule.min_kappa:
            return f"{name}: Cohen's kappa with human labels is {kappa:.2f}, below {rule.min_kappa:.2f}"
    return ""


def rule_specs(gate: Gate, run: Run | None = None) -> list[RuleSpec]:
    rules = (
        GateRule.objects.filter(gate=gate, stage=RuleStage.RELEASE)
        .select_related("grader")
        .order_by("position", "pk")
    )
    blocked = unapproved_rubrics(run) if run is not None else {}
    return [
        RuleSpec(
            name=rule.name,
            metric=rule.metric,
            severity=rule.severity,
            grader=rule.grader.slug if rule.grader else None,
            scope=rule.scope,
            mode=rule.mode,
            threshold=rule.threshold,
            direction=rule.direction,
            margin=rule.margin,
            strict=rule.strict,
            decide_on=rule.decide_on,
            blocked_reason=(blocked.get(rule.grader_id, "") if rule.grader_id else "")
            or uncalibrated(rule, run),
        )
        for rule in rules
    ]


def foreign_pinned_baseline(gate: Gate) -> Check | None:
    """The gate's pinned baseline when it is another gate's check (pinned before the gate's
    own validation refused that): a verdict never compares with it."""
    pinned = gate.baseline_check if gate.baseline_check_id else None
    return pinned if pinned is not None and pinned.gate_id != gate.pk else None


def find_baseline(check: Check) -> Check | None:
    """The owner's pinned baseline (a check of this gate), else the latest earlier check whose
    release was allowed."""
    gate = check.gate
    if gate.baseline_check_id and gate.baseline_check_id != check.pk and not foreign_pinned_baseline(gate):
        return gate.baseline_check
    return (
        Check.objects.filter(gate=gate, release_allowed=True, run__status=RunStatus.SUCCEEDED)
        .filter(Q(created_at__lt=check.created_at) | Q(created_at=check.created_at, pk__lt=check.pk))
        .exclude(pk=check.pk)
        .order_by("-created_at", "-pk")
        .first()
    )


def _release_allowed(check: Check, decisions: list[tuple[str, int]]) -> bool:
    """DESIGN.md section 5; ``decisions`` are (kind, actor id). A warn needs the gate's number
    of approvals from distinct people, like required reviewers on a protected branch."""
    if check.verdict == Verdict.PASS:
        return True
    if check.verdict == Verdict.WARN:
        approvers = {actor for kind, actor in decisions if kind == DecisionKind.APPROVE}
        return not check.gate.warnings_need_approval or len(approvers) >= check.gate.required_approvals
    if check.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        return any(kind == DecisionKind.OVERRIDE for kind, _ in decisions)
    return False


def requesters(check: Check) -> set[int]:
    """Who asked for this check: the user, or for a deploy token the person who issued it.
    None of them may approve it."""
    token = check.requested_by_token
    ids = {
        check.requested_by_user_id,
        token.created_by_id if token else None,
        token.user_id if token else None,
    }
    return ids - {None}


def baseline_graders(specs: list[RuleSpec]) -> set[str] | None:
    """The graders whose baseline grades the paired (no-regression) rules compare; None when one
    of them reads every grade of a case (pinned_pass). Trace deltas read no grade."""
    needed: set[str] = set()
    for spec in specs:
        if spec.mode != RuleMode.NO_REGRESSION:
            continue
        metric = metrics.get_metric(spec.metric)
        if metric.aggregate == metrics.ALL:
            return None
        if metric.needs_grader and spec.grader:
            needed.add(spec.grader)
    return needed


@transaction.atomic
def evaluate_check(run: Run, rows: Callable[[], Iterator[CaseRow]] | None = None) -> Check | None:
    """Decide the verdict of the check that started ``run``, once its run has finished.

    A run that failed or was cancelled cannot show the candidate is fine, so its check is
    inconclusive whatever its partial results say. ``rows`` reads the run's rows (the finaliser
    passes a reading that also makes the run's summary); by default, iter_case_rows.
    """
    check = Check.objects.select_for_update().select_related("gate").filter(run=run).first()
    if check is None or check.status == CheckStatus.DONE:
        return check
    baseline = find_baseline(check)
    specs = rule_specs(check.gate, run)
    # Both runs are streamed side by side, a chunk at a time: memory stays flat with their size.
    # Of the baseline's grades only those its paired rules compare are read (trace deltas read
    # none); a rule whose metric reads every grade of a case (pinned) needs them all.
    graders = baseline_graders(specs)
    baseline_rows = iter_case_rows(baseline.run_id, graders) if baseline and baseline.run_id else None
    result = evaluate(
        specs,
        rows() if rows is not None else iter_case_rows(run),
        baseline_rows,
        check.gate.missing_tolerance,
        pinned_not_run=load_pinned_not_run(run),
    )
    check.rule_results = result.rules
    check.verdict = result.verdict
    if run.status != RunStatus.SUCCEEDED:
        check.verdict = Verdict.INCONCLUSIVE
        check.metadata = {**check.metadata, "run_error": run.error or f"run {run.status}"}
    check.trace_deltas = result.trace_deltas
    if foreign := foreign_pinned_baseline(check.gate):
        check.metadata = {
            **check.metadata,
            "baseline_note": f"The gate's pinned baseline, check {foreign.pk}, is a check of another gate "
            "and was not used; compared with this gate's latest allowed check instead.",
        }
    check.baseline = baseline
    check.status = CheckStatus.DONE
    check.decided_at = timezone.now()
    check.release_allowed = _release_allowed(check, [])
    check.save()
    record_event(
        Action.CHECK_DECIDED,
        actor=None,
        obj=check,
        details={
            "verdict": check.verdict,
            "release_allowed": check.release_allowed,
            "run": run.pk,
            "run_status": run.status,
            "baseline": baseline.pk if baseline else None,
            # The rule table's digest: the audit chain vouches for the table as decided.
            "rules_sha256": fingerprint(check.rule_results),
            "outcomes": {r["name"]: r["outcome"] for r in check.rule_results},
        },
        via="finaliser",
    )
    if check.gate.webhook_url:
        enqueue(notify_webhook, check.pk, job_id=f"check-{check.pk}-webhook")
    return check


def check_status(check: Check) -> str:
    """queued | running | done, as the API reports it (the run row is the truth)."""
    if check.status == CheckStatus.DONE:
        return CheckStatus.DONE
    if check.run is not None and check.run.status == RunStatus.RUNNING:
        return CheckStatus.RUNNING
    return CheckStatus.QUEUED


def approval_refusal(check: Check, actor: AbstractBaseUser) -> Exception | None:
    """What refuses ``actor``'s approval of ``check`` now, or None (decision buttons ask too)."""
    gate = check.gate
    if not gate.is_owner(actor) and not gate.approvers.filter(pk=actor.pk).exists():
        return PermissionDenied("Only the gate's approvers or its owners can approve a check.")
    if check.verdict != Verdict.WARN:
        return ValidationError(f"Only a warn verdict can be approved; this one is {check.verdict}.")
    if actor.pk in requesters(check):
        return PermissionDenied("You requested this check: someone else must approve it.")
    if check.decisions.filter(kind=DecisionKind.APPROVE, actor=actor).exists():
        return ValidationError("You already approved this check: approvals are counted per person.")
    return None


@transaction.atomic
def approve_check(check: Check, *, actor: AbstractBaseUser, reason: str) -> Check:
    """An approver (or an owner) who did not request the check acknowledges its warn verdict;
    the release is allowed once the gate's required number of people have."""
    check = (
        Check.objects.select_for_update(of=("self",))
        .select_related("gate", "requested_by_token")
        .get(pk=check.pk)
    )
    if refusal := approval_refusal(check, actor):
        raise refusal
    return _decide(check, DecisionKind.APPROVE, actor, reason)


def override_refusal(check: Check, actor: AbstractBaseUser) -> Exception | None:
    """What refuses ``actor``'s override of ``check`` now, or None."""
    if not check.gate.is_owner(actor):
        return PermissionDenied("Only the gate's owners can override a verdict.")
    if check.verdict not in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        return ValidationError(
            f"Only fail or inconclusive verdicts are overridden; this one is {check.verdict}."
        )
    if check.release_allowed:
        return ValidationError("This check's release is already allowed.")
    return None


@transaction.atomic
def override_check(check: Check, *, actor: AbstractBaseUser, reason: str) -> Check:
    """An owner of the gate releases a fail or inconclusive verdict, with a written reason."""
    check = Check.objects.select_for_update().select_related("gate").get(pk=check.pk)
    if refusal := override_refusal(check, actor):
        raise refusal
    return _decide(check, DecisionKind.OVERRIDE, actor, reason)


def cancel_refusal(
    check: Check, actor: AbstractBaseUser | None, token: DeployToken | None = None
) -> Exception | None:
    """What refuses cancelling ``check`` now, or None."""
    if token is None and (actor is None or not (check.gate.is_owner(actor) or actor.is_superuser)):
        return PermissionDenied("Only the gate's owners (or a deploy token of the gate) cancel a check.")
    if check.run is None or check.status == CheckStatus.DONE:
        return ValidationError(f"Check {check.pk} is already decided.")
    return None


def cancel_check(
    check: Check, *, actor: AbstractBaseUser | None, token: DeployToken | None = None, reason: str = ""
) -> Check:
    """Stop a check's run. The gate's owners or a deploy token of the gate may; the verdict of
    a cancelled run is inconclusive, never a pass. The audit event names the token."""
    with transaction.atomic():
        check = Check.objects.select_for_update(of=("self",)).select_related("gate", "run").get(pk=check.pk)
        if refusal := cancel_refusal(check, actor, token):
            raise refusal
        record_event(
            Action.CHECK_CANCELLED,
            actor=actor,
            obj=check,
            reason=reason,
            details={"token": token.identity() if token else None, "run": check.run_id},
        )
        cancel_run(
            check.run,
            actor=actor,
            reason=reason or (f"by token {token.name} ({token.prefix})" if token else ""),
        )
    check.refresh_from_db()
    return check


def _decide(check: Check, kind: str, actor: AbstractBaseUser, reason: str) -> Check:
    if not reason or not reason.strip():
        raise ValidationError({"reason": "A written reason is required."})
    CheckDecision.objects.create(
        gate_check=check, kind=kind, actor=actor, actor_username=actor.get_username(), reason=reason.strip()
    )
    decisions = list(check.decisions.values_list("kind", "actor_id"))
    check.release_allowed = _release_allowed(check, decisions)
    check.save(update_fields=["release_allowed"])
    approvals = len({a for k, a in decisions if k == DecisionKind.APPROVE})
    record_event(
        Action.CHECK_APPROVED if kind == DecisionKind.APPROVE else Action.CHECK_OVERRIDDEN,
        actor=actor,
        obj=check,
        reason=reason.strip(),
        details={
            "verdict": check.verdict,
            "release_allowed": check.release_allowed,
            "approvals": approvals,
            "required_approvals": check.gate.required_approvals,
        },
    )
    return check


GATE_FIELDS = (
    "name",
    "owner",
    "dataset",
    "warnings_need_approval",
    "required_approvals",
    "missing_tolerance",
    "default_target",
    "webhook_url",
    "description",
    "production_window_hours",
    "production_min_traces",
    "active",
)


@transaction.atomic
def save_gate(
    *,
    slug: str,
    approvers: list[AbstractBaseUser] | None = None,
    co_owners: list[AbstractBaseUser] | None = None,
    sources: list[Any] | None = None,
    rules: list[dict[str, Any]] | None = None,
    actor: AbstractBaseUser | None = None,
    **fields: Any,
) -> Gate:
    """Create or update a gate by slug and, when ``rules`` is given, replace its rule table.

    Only the gate's owners change an existing gate (what its rules mean is theirs to say);
    each rule dict holds GateRule fields, with ``grader`` as a Grader instance or None.
    Every change is an audit event (written from its history record, whatever the path).
    """
    unknown = set(fields) - set(GATE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown gate field(s): {', '.join(sorted(unknown))}.")
    gate = Gate.objects.select_for_update().filter(slug=slug).first()
    if gate is not None and actor is not None and not gate.is_owner(actor) and not actor.is_superuser:
        raise PermissionDenied("Only the gate's owners can change its settings and rules.")
    gate = gate or Gate(slug=slug)
    for field, value in fields.items():
        setattr(gate, field, value)
    gate.full_clean(exclude=["baseline_check"])
    gate._history_user = actor
    gate.save()
    if approvers is not None:  # None leaves them, as rules=None leaves the rule table
        gate.approvers.set(approvers)
    if co_owners is not None:
        gate.co_owners.set(co_owners)
    if sources is not None:
        gate.sources.set(sources)
    if rules is not None:
        for existing in GateRule.objects.filter(gate=gate):
            existing._history_user = actor
            existing.delete()
        for position, rule_fields in enumerate(rules):
            rule = GateRule(gate=gate, position=position, **rule_fields)
            rule.full_clean()
            rule._history_user = actor
            rule.save()
    return gate


@transaction.atomic
def add_gate_rules(
    gate: Gate, rules: list[dict[str, Any]], *, actor: AbstractBaseUser | None
) -> list[GateRule]:
    """Append rules to a gate's table, leaving its rules as they are; only its owners do."""
    gate = Gate.objects.select_for_update().get(pk=gate.pk)
    if actor is not None and not gate.is_owner(actor) and not actor.is_superuser:
        raise PermissionDenied("Only the gate's owners can change its settings and rules.")
    last = GateRule.objects.filter(gate=gate).aggregate(n=Max("position"))["n"]
    added = []
    for offset, fields in enumerate(rules, start=1 if last is not None else 0):
        rule = GateRule(gate=gate, position=(last or 0) + offset, **fields)
        rule.full_clean()
        rule._history_user = actor
        rule.save()
        added.append(rule)
    return added


def owns_gate_on_dataset(case: Any, user: AbstractBaseUser) -> bool:
    """An owner of a gate on the case's dataset may confirm retiring or unpinning its pinned
    case: the gate is what the pin protects (datasets_app.extensions asks)."""
    return Gate.objects.owned_by(user).filter(dataset_id=case.dataset_id).exists()


WEBHOOK_TIMEOUT_S = 10


def notify_webhook(check_id: int) -> None:
    """Job: POST the decided check to the gate's webhook (best effort, logged on failure)."""
    check = Check.objects.select_related("gate", "run").get(pk=check_id)
    payload = {
        "id": check.pk,
        "gate": check.gate.slug,
        "candidate": check.candidate,
        "verdict": check.verdict,
        "release_allowed": check.release_allowed,
        "rules": check.rule_results,
    }
    try:
        response = httpx2.post(
            check.gate.webhook_url, json=payload, timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False
        )
        response.raise_for_status()
    except httpx2.HTTPError as exc:
        logger.warning("webhook for check %s failed: %s", check.pk, exc)
