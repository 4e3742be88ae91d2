"""What a check's admin page shows beside its verdict: the rule table with the cases behind
each rule, the trace deltas as a table, the approval trail and the cases that were missing.

Reads the run's failing and errored grades once (one query) and sorts them into the rules
by scope and grader in Python, as the verdict itself was computed.
"""

from collections import defaultdict
from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from gates_app.evaluation import in_scope
from gates_app.models import Check
from grading_app.models import CaseResult, Grade

CASES_SHOWN = 50  # per rule, and of the missing cases
GRADER_METRICS = ("pass_rate", "mean_score", "pass_hat_k", "consistency")  # failing grades name cases


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "all cases"
    return "-" if value is None or value == "" else str(value)


class _Row:
    """The scope fields of a case, as gates_app.evaluation.in_scope reads them."""

    def __init__(self, tier: str, failure_class: str, risk: str, tags: list[str]) -> None:
        self.tier, self.failure_class, self.risk, self.tags = tier, failure_class, risk, tags or []


def _result_url(result_id: int) -> str:
    return reverse("admin:grading_app_caseresult_change", args=[result_id])


def cases_behind_rules(check: Check) -> dict[str, list[tuple[str, int, str, str]]]:
    """Rule name -> (case key, result id, "failed" | "undecided", why) for the rules whose
    cases can be named: grader rules (failed and errored grades in scope) and the pinned rule."""
    if check.run_id is None or not check.rule_results:
        return {}
    grades = (
        Grade.objects.filter(case_result__run_id=check.run_id)
        .exclude(passed=True, error="")
        .values_list(
            "case_result_id",
            "case_result__case__key",
            "case_result__case__tier",
            "case_result__case__failure_class__slug",
            "case_result__case__risk",
            "case_result__case__tags",
            "grader__slug",
            "passed",
            "rationale",
            "error",
        )
        .order_by("case_result__case__key")
    )
    by_grader: dict[str, list[tuple]] = defaultdict(list)
    ids: dict[str, int] = {}
    for result_id, key, tier, failure_class, risk, tags, slug, passed, rationale, error in grades:
        by_grader[slug].append(
            (key, result_id, _Row(tier, failure_class, risk, tags), passed, rationale, error)
        )
        ids[key] = result_id
    cases: dict[str, list[tuple[str, int, str, str]]] = {}
    for rule in check.rule_results:
        listed = []
        if rule["metric"] in GRADER_METRICS and rule.get("grader"):
            for key, result_id, row, passed, rationale, error in by_grader.get(rule["grader"], []):
                if in_scope(row, rule.get("scope") or {}):
                    kind = "undecided" if error or passed is None else "failed"
                    listed.append((key, result_id, kind, error or rationale))
        elif rule["metric"] == "pinned_pass":
            listed = [(k, ids.get(k, 0), "failed", "a grade failed") for k in rule.get("cases_failing", [])]
            listed += [
                (k, ids.get(k, 0), "undecided", "cannot be graded") for k in rule.get("cases_undecided", [])
            ]
        if listed:
            cases[rule["name"]] = listed
    return cases


def rule_table(check: Check) -> SafeString:
    """The rule table as DESIGN.md section 5 states a rule result, each row with its cases."""
    if not check.rule_results:
        return mark_safe("<p>No rule results yet: the check is not decided.</p>")
    behind = cases_behind_rules(check)
    header = (
        "rule",
        "severity",
        "metric",
        "grader",
        "scope",
        "value",
        "baseline",
        "threshold / margin",
        "95% interval",
        "n",
        "outcome",
    )
    rows = []
    for r in check.rule_results:
        limit = r.get("margin") if r.get("mode") == "no_regression" else r.get("threshold")
        limit_text = f"margin {fmt(limit)}" if r.get("mode") == "no_regression" else fmt(limit)
        cells = format_html_join(
            "",
            "<td>{}</td>",
            (
                (r["name"],),
                (r["severity"],),
                (r["metric"],),
                (fmt(r.get("grader")),),
                (fmt(r.get("scope") or {}),),
                (fmt(r.get("value")),),
                (fmt(r.get("baseline")),),
                (limit_text,),
                (fmt(r.get("interval")),),
                (r.get("n", "-"),),
            ),
        )
        outcome = format_html('<td class="outcome-{}"><b>{}</b></td>', r["outcome"], r["outcome"].upper())
        rows.append(format_html('<tr class="rule-row">{}{}</tr>', cells, outcome))
        # The note and the cases behind the rule get a row of their own, the table's width.
        if r.get("note") or r["name"] in behind:
            rows.append(_detail_row(r.get("note", ""), behind.get(r["name"], []), len(header)))
    return format_html(
        '<table class="rule-table" id="rule-table"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        format_html_join("", "<th>{}</th>", ((h,) for h in header)),
        mark_safe("".join(rows)),
    )


def _detail_row(note: str, cases: list[tuple[str, int, str, str]], width: int) -> SafeString:
    note_html = format_html('<div class="rule-note">{}</div>', note) if note else ""
    cases_html = ""
    if cases:
        shown = cases[:CASES_SHOWN]
        items = format_html_join(
            "",
            '<li><a href="{}">{}</a> <span class="case-{}">{}</span>: {}</li>',
            (
                (_result_url(rid) if rid else "#", key, kind, kind, why or "-")
                for key, rid, kind, why in shown
            ),
        )
        more = f" (first {CASES_SHOWN} of {len(cases)})" if len(cases) > CASES_SHOWN else ""
        failed = sum(1 for c in cases if c[2] == "failed")
        cases_html = format_html(
            "<details><summary>Cases behind this rule: {} failed, {} undecided{}</summary>"
            '<ul class="rule-case-list">{}</ul></details>',
            failed,
            len(cases) - failed,
            more,
            items,
        )
    return format_html('<tr class="rule-cases"><td colspan="{}">{}{}</td></tr>', width, note_html, cases_html)


def approval_trail(check: Check) -> SafeString:
    """Every approval and override with who (as they were named then), when and why."""
    decisions = list(check.decisions.all())
    gate = check.gate
    needed = ""
    if check.verdict == "warn" and gate.warnings_need_approval:
        approvals = len({d.actor_id for d in decisions if d.kind == "approve"})
        needed = format_html(
            "<p>{} of {} required approval(s) from distinct people (never the requester).</p>",
            approvals,
            gate.required_approvals,
        )
    if not decisions:
        return format_html("{}<p>No approvals or overrides.</p>", needed)
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (d.created_at.strftime("%Y-%m-%d %H:%M"), d.get_kind_display(), d.actor_username, d.reason)
            for d in decisions
        ),
    )
    return format_html(
        '{}<table id="approval-trail"><thead><tr><th>when</th><th>decision</th><th>by</th><th>reason</th>'
        "</tr></thead><tbody>{}</tbody></table>",
        needed,
        rows,
    )


def missing_cases(check: Check) -> SafeString:
    """The cases of the run that produced nothing to judge (missing or errored), by key."""
    if check.run_id is None:
        return mark_safe("-")
    rows = (
        CaseResult.objects.filter(run_id=check.run_id).exclude(missing=False, error="").order_by("case__key")
    )
    total = rows.count()
    if not total:
        return mark_safe("None: every case of the run produced an output.")
    shown = rows.values_list("pk", "case__key", "error")[:CASES_SHOWN]
    items = format_html_join(
        "",
        '<li><a href="{}">{}</a>: {}</li>',
        ((_result_url(pk), key, error or "missing") for pk, key, error in shown),
    )
    more = f" (first {CASES_SHOWN})" if total > CASES_SHOWN else ""
    return format_html(
        '<p>{} case(s) missing or errored{}:</p><ul id="missing-cases">{}</ul>', total, more, items
    )


DELTA_NAMES = {
    "tool_calls_mean": "tool calls per case",
    "trace_steps_mean": "trace steps per case",
    "retry_rate": "retry rate",
    "refusal_rate": "refusal rate",
}


def trace_delta_table(check: Check) -> SafeString:
    """Per failure class: each trace signal for candidate and baseline, and the cases whose
    tool sequence changed."""
    if not check.trace_deltas:
        return mark_safe("<p>No trace deltas: the check has no baseline, or is not decided.</p>")
    rows = []
    for failure_class, entry in check.trace_deltas.items():
        cells = []
        for name in DELTA_NAMES:
            values = entry.get(name) or {}
            delta = values.get("delta")
            sign = "" if delta is None or delta <= 0 else "+"
            cells.append(
                format_html(
                    "<td>{} &rarr; {} <b>({}{})</b></td>",
                    fmt(values.get("baseline")),
                    fmt(values.get("candidate")),
                    sign,
                    fmt(delta),
                )
            )
        changed = entry.get("tool_sequence_changed") or {"count": 0, "cases": []}
        sequences = format_html_join(
            "",
            "<li>{}: {} &rarr; {}</li>",
            (
                (c["case"], " > ".join(c["baseline"]) or "no tools", " > ".join(c["candidate"]) or "no tools")
                for c in changed["cases"]
            ),
        )
        changed_cell = (
            format_html("<details><summary>{}</summary><ul>{}</ul></details>", changed["count"], sequences)
            if changed["count"]
            else "0"
        )
        rows.append(
            format_html(
                "<tr><td>{}</td>{}<td>{}</td></tr>", failure_class, mark_safe("".join(cells)), changed_cell
            )
        )
    header = ("failure class", *DELTA_NAMES.values(), "tool sequence changed")
    return format_html(
        '<table id="trace-deltas"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>'
        "<p>Each cell: baseline &rarr; candidate (change).</p>",
        format_html_join("", "<th>{}</th>", ((h,) for h in header)),
        mark_safe("".join(rows)),
    )
