"""Post-release verdicts: a shipped release's live traffic against the release before it, with
the gate's production rules and the same rule table and verdict semantics as a check.

Like a canary judgement (Kayenta), it compares two populations of live traffic, not case by
case: rates by Newcombe's interval of the difference, means by Welch's, percentiles by the
order-statistic interval (monitoring_app.windows). Missing evidence is never a pass: until
both releases served the gate's ``production_min_traces``, every rule is undecided.

Windows: the candidate's traffic from its first trace for ``production_window_hours`` (or
until now); the baseline's over the same length of time before that first trace, plus any it
served alongside the candidate meanwhile (a canary rollout).
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from gates_app.choices import DecideOn, Outcome, RuleMode, RuleStage, Verdict
from gates_app.evaluation import verdict_for
from gates_app.models import Gate, GateRule
from monitoring_app import windows
from monitoring_app.choices import SampleStatus
from monitoring_app.models import MonitorSample, Trace


def _traffic(gate: Gate) -> QuerySet[Trace]:
    # The source ids as values, not a subquery: the planner then walks (source, release, time).
    return Trace.objects.filter(source_id__in=list(gate.sources.values_list("pk", flat=True)))


def previous_release(gate: Gate, candidate: str, before: dt.datetime) -> str | None:
    """The release that served the gate's sources last before the candidate's first trace."""
    return (
        _traffic(gate)
        .filter(time__lt=before)
        .exclude(release__in=["", candidate])
        .order_by("-time", "-pk")
        .values_list("release", flat=True)
        .first()
    )


def first_trace(gate: Gate, release: str) -> dt.datetime | None:
    """When ``release`` first served one of the gate's sources: per source the first row of the
    (source, release, time) index, so it costs a few index reads whatever the traffic."""
    # Ordered as the index is (not just by time), so the planner reads it rather than walking the
    # time index from the start until this release appears.
    in_index_order = ("source_id", "release", "time")
    firsts = [
        Trace.objects.filter(source_id=source_id, release=release)
        .order_by(*in_index_order)
        .values_list("time", flat=True)
        .first()
        for source_id in gate.sources.values_list("pk", flat=True)
    ]
    return min((f for f in firsts if f is not None), default=None)


def _measure(rule: GateRule, gate: Gate, traces: QuerySet[Trace]) -> windows.Measure:
    spec = windows.get_metric(rule.metric)
    samples = MonitorSample.objects.filter(
        trace__in=traces.values("pk"), in_sample=True, status=SampleStatus.GRADED
    )
    return windows.measure(spec, traces, samples=samples, grader_id=rule.grader_id)


def production_verdict(
    gate: Gate, candidate: str, *, baseline: str | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The verdict on ``candidate``'s live traffic, as the API returns it."""
    now = now or timezone.now()
    rules = list(
        GateRule.objects.filter(gate=gate, stage=RuleStage.PRODUCTION)
        .select_related("grader")
        .order_by("position", "pk")
    )
    traffic = _traffic(gate)
    first = first_trace(gate, candidate)
    body: dict[str, Any] = {
        "gate": gate.slug,
        "candidate": candidate,
        "baseline": baseline,
        "verdict": Verdict.INCONCLUSIVE,
        "window": None,
        "traces": 0,
        "baseline_traces": 0,
        "min_traces": gate.production_min_traces,
        "note": "",
        "rules": [],
    }
    if not rules:
        body["note"] = "the gate declares no production rules"
        return body
    if first is None:
        body["note"] = f"no traffic from {candidate!r} on the gate's sources yet"
        body["rules"] = [_undecided(rule, body["note"]) for rule in rules]
        return body
    end = min(now, first + dt.timedelta(hours=gate.production_window_hours))
    length = max(end - first, dt.timedelta(seconds=1))
    baseline = baseline or previous_release(gate, candidate, first)
    current = traffic.filter(release=candidate, time__gte=first, time__lt=end)
    before = traffic.filter(release=baseline or "", time__gte=first - length, time__lt=end)
    # Every metric but pass rates in one scan of each window, whatever the number of rules.
    specs = list({r.metric: windows.get_metric(r.metric) for r in rules if r.metric != "pass_rate"}.values())
    count, measured = windows.measure_window(specs, current)
    base_count, base_measured = windows.measure_window(specs, before) if baseline else (0, {})
    body.update(
        baseline=baseline,
        window={"start": first.isoformat(), "end": end.isoformat()},
        traces=count,
        baseline_traces=base_count,
    )

    def in_candidate(rule: GateRule) -> windows.Measure:
        return measured[rule.metric] if rule.metric in measured else _measure(rule, gate, current)

    def in_baseline(rule: GateRule) -> windows.Measure:
        return base_measured[rule.metric] if rule.metric in base_measured else _measure(rule, gate, before)

    results = [
        _evaluate(rule, gate, in_candidate(rule), in_baseline if baseline else None, body) for rule in rules
    ]
    body["rules"] = results
    body["verdict"] = verdict_for(results)
    return body


def _row(rule: GateRule) -> dict[str, Any]:
    spec = windows.get_metric(rule.metric)
    return {
        "name": rule.name,
        "metric": rule.metric,
        "severity": rule.severity,
        "mode": rule.mode,
        "grader": rule.grader.slug if rule.grader else None,
        "scope": {},
        "direction": rule.direction or spec.direction,
        "outcome": Outcome.UNDECIDED,
        "value": None,
        "baseline": None,
        "threshold": rule.threshold,
        "margin": rule.margin if rule.mode == RuleMode.NO_REGRESSION else None,
        "interval": None,
        "n": 0,
        "missing": 0,
        "errored": 0,
        "note": "",
    }


def _undecided(rule: GateRule, note: str) -> dict[str, Any]:
    return {**_row(rule), "note": note}


def _evaluate(
    rule: GateRule,
    gate: Gate,
    found: windows.Measure,
    baseline: Callable[[GateRule], windows.Measure] | None,
    body: dict[str, Any],
) -> dict[str, Any]:
    """One rule's row: ``found`` in the candidate's window; ``baseline`` measures the baseline's
    (None when no earlier release served the sources)."""
    spec = windows.get_metric(rule.metric)
    row = _row(rule)
    direction = row["direction"]
    row.update(value=found.value, interval=list(found.interval) if found.interval else None, n=found.n)
    row["errored"] = found.errored
    minimum = gate.production_min_traces
    if body["traces"] < minimum:
        row["note"] = f"only {body['traces']} trace(s) of {body['candidate']} yet; the gate needs {minimum}"
        return row
    if found.value is None:
        row["note"] = "nothing measured in the candidate's traffic"
        return row
    if rule.mode == RuleMode.ABSOLUTE:
        value, low, high = found.value, *(found.interval or (found.value, found.value))

        def clears(x: float) -> bool:
            return x >= rule.threshold if direction == "min" else x <= rule.threshold

        if rule.decide_on == DecideOn.INTERVAL:
            worst, best = (low, high) if direction == "min" else (high, low)
            if clears(worst):
                row["outcome"] = Outcome.PASS
            elif not clears(best):
                row["outcome"] = Outcome.FAIL
            else:
                row["note"] = "the 95% interval straddles the threshold"
            return row
        row["outcome"] = Outcome.PASS if clears(value) else Outcome.FAIL
        return row
    if baseline is None:
        row["note"] = "no earlier release served the gate's sources: nothing to compare with"
        return row
    if body["baseline_traces"] < minimum:
        row["note"] = f"only {body['baseline_traces']} trace(s) of {body['baseline']}; needs {minimum}"
        return row
    base = baseline(rule)
    row["baseline"] = base.value
    comparison = windows.compare(spec, found, base, rule.margin, direction)
    row["difference"] = comparison.difference
    row["interval"] = list(comparison.interval) if comparison.interval else None
    if comparison.worse:
        row["outcome"] = Outcome.FAIL
    elif comparison.better_or_same:
        row["outcome"] = Outcome.PASS
    else:
        row["note"] = "the 95% interval of the difference straddles the margin"
    return row
