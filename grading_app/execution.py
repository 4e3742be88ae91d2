"""Producing and grading one chunk of a run: outputs from the target, then every grader.

Pure of database writes (the job writes what this returns in one transaction). Code
graders run inline; judge graders are batched through grading_app.judging, and live
targets are called concurrently within each endpoint's limit.
"""

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from datasets_app.models import Case
from grading_app import graders, judging
from grading_app.choices import TargetKind
from grading_app.detectors import missing_signals
from grading_app.models import RubricVersion, Run, SubmittedOutput, Target
from grading_app.targets import ChunkCase, Produced
from grading_app.traces import count_tool_calls, tool_sequence
from grading_app.transcripts import output_of

logger = logging.getLogger(__name__)

RESULT_METRICS = (
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "retries",
    "refused",
    "escalated",
)
HTTP_TARGET_CONCURRENCY = 8


def target_concurrency(target: Target | None) -> int | None:
    """How many of a live target's calls one chunk keeps in flight (None: it makes no calls)."""
    if target is None or target.kind == TargetKind.SUBMITTED:
        return None
    if target.kind == TargetKind.OPENAI_CHAT:
        return target.endpoint.max_concurrency
    return HTTP_TARGET_CONCURRENCY


Slot = tuple[int, int]  # (case id, trial): one result of a run


class Submitted(NamedTuple):
    """A submitted output as read for grading (plain values: no model instance per row)."""

    output: Any
    trace: list[dict[str, Any]]
    metrics: dict[str, Any]


def produce_outputs(run: Run, cases: list[ChunkCase]) -> dict[Slot, Produced]:
    """The candidate's output for each case and trial, by (case id, trial)."""
    target = run.target
    slots = [(case, trial) for case in cases for trial in range(1, run.trials + 1)]
    if target is None or target.kind == TargetKind.SUBMITTED:
        rows = SubmittedOutput.objects.filter(run=run, case_key__any_of=[c.key for c in cases]).values_list(
            "case_key", "trial", "output", "trace", "metrics"
        )
        submitted = {(key, trial): Submitted(*values) for key, trial, *values in rows}
        produced = {}
        for case, trial in slots:
            found = submitted.get((case.key, trial))
            # A final turn of only tool calls (output null, a trace) is graded on those calls.
            output = None if found is None else output_of(found.output, found.trace)
            if output is None:
                of_trial = f" (trial {trial})" if run.trials > 1 else ""
                produced[case.pk, trial] = Produced(
                    missing=True, error=f"no output submitted for this case{of_trial}"
                )
            else:
                produced[case.pk, trial] = Produced(output=output, trace=found.trace, metrics=found.metrics)
        return produced
    from grading_app.targets.live import producer  # it imports openai and httpx: keep that lazy

    produce = producer(target, cases, run.persona_versions)
    # Every trial is a call (or a conversation) of its own, all within the target's concurrency.
    with ThreadPoolExecutor(max_workers=target_concurrency(target)) as pool:
        answers = pool.map(lambda slot: produce(slot[0]), slots)
        return {(case.pk, trial): produced for (case, trial), produced in zip(slots, answers, strict=True)}


Row = dict[str, Any]  # a CaseResult or Grade row by attribute name, written by grading_app.jobs


def to_result(
    run: Run, case: ChunkCase, produced: Produced, trial: int = 1
) -> tuple[Row, graders.GradingInput | None]:
    """A CaseResult row for what was produced, and the grading input when there is output.

    Rows are plain dicts (unset columns take their defaults when written): building 10,000
    result and 30,000 grade model instances a run was a fifth of a code-graded chunk's time.
    """
    result: Row = {"run_id": run.pk, "case_id": case.pk, "trial": trial, "case_revision": case.revision}
    if produced.output is None and produced.trace and not produced.error:
        produced = dataclasses.replace(produced, output=output_of(None, produced.trace))
    if produced.missing or produced.error or produced.output is None:
        result["missing"] = produced.missing or (produced.output is None and not produced.error)
        result["error"] = produced.error or "no output"
        # What a conversation said before it broke is evidence: kept, though nothing is graded.
        result["trace"], result["trace_steps"] = produced.trace, len(produced.trace)
        return result, None
    result["output"], result["trace"] = produced.output, produced.trace
    result["tool_calls"] = count_tool_calls(produced.trace)
    result["tool_sequence"] = tool_sequence(produced.trace)
    result["trace_steps"] = len(produced.trace)
    for name in RESULT_METRICS:
        if produced.metrics.get(name) is not None:
            result[name] = produced.metrics[name]
    item = graders.GradingInput(
        case_input=case.input,
        expected=case.expected,
        output=produced.output,
        trace=produced.trace,
        metrics=produced.metrics,
    )
    for name, value in missing_signals(item.output_text, produced.trace, produced.metrics).items():
        result[name] = value
        result[f"{name}_detected"] = True
    return result, item


def grade_code(kind: graders.GraderKind, pinned: dict[str, Any], item: graders.GradingInput) -> Row | None:
    """A code grader's Grade row for ``item`` (None: the grader does not apply to it)."""
    try:
        outcome = kind.evaluate(item, pinned["config"])
    except Exception as exc:
        # A grader that breaks on one case is an error on that grade, never a pass.
        logger.warning("grader %s failed: %s", pinned["slug"], exc)
        return {"grader_id": pinned["id"], "error": f"{type(exc).__name__}: {exc}"[:2000]}
    if outcome is None:
        return None
    return {
        "grader_id": pinned["id"],
        "score": min(1.0, max(0.0, float(outcome.score))),
        "passed": bool(outcome.passed),
        "rationale": outcome.rationale[:2000],
    }


def grade_cases(run: Run, case_ids: list[int]) -> tuple[list[Row], dict[Slot, list[Row]]]:
    """Results for the cases (each trial of each) and their grades by (case id, trial), judge
    calls included."""
    # In key order, as Case's default ordering has it within a dataset (without its join).
    cases = [
        ChunkCase(*values)
        for values in Case.objects.filter(pk__any_of=case_ids)
        .order_by("key")
        .values_list(*ChunkCase._fields[:-1], "failure_class__slug")
    ]
    snapshot = [(g, graders.get_kind(g["kind"])) for g in run.grader_snapshot]
    version_ids = {g["rubric_version"] for g, _ in snapshot if g.get("rubric_version")}
    versions = RubricVersion.objects.select_related("endpoint").in_bulk(version_ids)
    produced = produce_outputs(run, cases)
    results: list[Row] = []
    grades: dict[Slot, list[Row]] = {}
    tasks: list[judging.JudgeTask] = []
    for case in cases:
        for trial in range(1, run.trials + 1):
            slot = (case.pk, trial)
            result, item = to_result(run, case, produced[slot], trial)
            results.append(result)
            if item is None:
                continue  # nothing to grade: the result says missing or errored
            grades[slot] = []
            for pinned, kind in snapshot:
                if pinned["failure_classes"] and case.failure_class_slug not in pinned["failure_classes"]:
                    continue
                if kind.needs_rubric:
                    if not kind.reads(case.expected or {}, pinned["config"]):
                        continue
                    version = versions.get(pinned.get("rubric_version"))
                    if version is None:
                        grades[slot].append(
                            {"grader_id": pinned["id"], "error": "the grader's rubric has no version"}
                        )
                        continue
                    prompt = judging.render_prompt(version, item, pinned["config"])
                    tasks.append(judging.JudgeTask(ref=(slot, pinned["id"]), version=version, prompt=prompt))
                elif (grade := grade_code(kind, pinned, item)) is not None:
                    grades[slot].append(grade)
    if tasks:
        outcomes = judging.run_judges(tasks)
        for task in tasks:
            slot, grader_id = task.ref
            outcome = outcomes[task.ref]
            grades[slot].append(
                {
                    "grader_id": grader_id,
                    "rubric_version_id": task.version.pk,
                    "score": outcome.score,
                    "passed": outcome.passed,
                    "rationale": outcome.rationale[:2000],
                    "error": outcome.error[:2000],
                    "raw_response": outcome.raw,
                    "input_tokens": outcome.input_tokens,
                    "output_tokens": outcome.output_tokens,
                    "cost_usd": outcome.cost_usd,
                    "cached": outcome.cached,
                }
            )
    return results, grades
