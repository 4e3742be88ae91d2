"""LLM judging: render the rubric prompt safely, reuse cached answers, call judges concurrently.

The output under evaluation is untrusted. It goes between tags that carry a value derived
from a hash of the output itself, so it cannot predict and close its own tag; any text in
it that looks like such a tag is escaped. The trace (``{trace}``, ``{retrieved}``,
``{tool_calls}``, and ``{transcript}``: the whole conversation, grading_app.conversations) is
just as untrusted: each renders escaped, inside the same tags. The same
output always renders the same prompt, so the cache (keyed by model, rubric version and
rendered prompt) still hits.
"""

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from evalproject.bulk import copy_insert
from grading_app.conversations import case_scenario, transcript_text
from grading_app.graders.base import GradingInput
from grading_app.models import JudgeCacheEntry, RubricVersion
from grading_app.traces import normalise_trace

if TYPE_CHECKING:
    from grading_app import llm

TAG_PREFIX = "untrusted-output-"
PLACEHOLDER = re.compile(
    r"\{(criteria|examples|input|expected|output|tag|trace|retrieved|tool_calls|transcript|scenario"
    r"|turn|max_turns)\}"
)
# Placeholders for what the candidate's trace holds: as untrusted as its output, so each renders
# escaped and between the output's own tags, whatever the template around it says.
TRACE_PLACEHOLDERS = ("trace", "retrieved", "tool_calls", "transcript")


def output_tag(output_text: str) -> str:
    return TAG_PREFIX + hashlib.sha256(output_text.encode()).hexdigest()[:16]


def escape_output(output_text: str) -> str:
    """Neutralise anything in the output that could open or close an output tag."""
    return output_text.replace(f"</{TAG_PREFIX}", f"&lt;/{TAG_PREFIX}").replace(
        f"<{TAG_PREFIX}", f"&lt;{TAG_PREFIX}"
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def trace_views(trace: list[dict[str, Any]]) -> dict[str, str]:
    """The trace as the judge reads it: every step, the retrieved documents, the tool calls."""
    steps = normalise_trace(trace)
    documents = [
        f"[{d.get('id', '')}] {d.get('text', '')}" if isinstance(d, dict) else str(d)
        for step in steps
        if step.get("type") == "retrieval"
        for d in step.get("documents") or []
    ]
    calls = [
        f"{step.get('name', '')}({_json(step.get('arguments'))})"
        + (f" -> {_json(step['result'])}" if step.get("result") is not None else "")
        + (f" [error: {_json(step['error'])}]" if step.get("error") else "")
        for step in steps
        if step.get("type") == "tool_call"
    ]
    return {
        "trace": "\n".join(_json(step) for step in steps) or "(no trace)",
        "retrieved": "\n\n".join(documents) or "(nothing retrieved)",
        "tool_calls": "\n".join(calls) or "(no tool calls)",
    }


def untrusted_block(text: str, tag: str) -> str:
    """Candidate-written text as a prompt shows it: escaped, between the tags."""
    return f"<{tag}>\n{escape_output(text)}\n</{tag}>"


def fill(template: str, values: dict[str, str]) -> str:
    """The template with its placeholders replaced in one pass (inserted text is never expanded
    again); a placeholder with no value here stays as written, so a judge template that
    happens to say ``{turn}`` renders as it always did."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def examples_text(version: RubricVersion) -> str:
    if not version.few_shot:
        return ""
    lines = ["Examples of graded answers:"]
    for example in version.few_shot:
        lines.append(json.dumps(example, ensure_ascii=False))
    return "\n".join(lines) + "\n\n"


def render_prompt(version: RubricVersion, item: GradingInput, config: dict[str, Any]) -> str:
    """The judge prompt for one case; deterministic for the same inputs."""
    output_text = item.output_text
    values = {
        "criteria": version.criteria,
        "examples": examples_text(version),
        "input": json.dumps(item.case_input, ensure_ascii=False, sort_keys=True)
        if config.get("include_input", True)
        else "(not shown)",
        "expected": json.dumps(item.expected, ensure_ascii=False, sort_keys=True)
        if config.get("include_expected", True)
        else "(not shown)",
        "output": escape_output(output_text),
        "tag": output_tag(output_text),
    }
    template = version.prompt_template
    if any(f"{{{name}}}" in template for name in TRACE_PLACEHOLDERS):
        views = trace_views(item.trace)
        if "{transcript}" in template:
            shown = config.get("include_input", True) and isinstance(item.case_input, dict)
            opening = item.case_input.get("messages") if shown else None
            views["transcript"] = transcript_text(opening, normalise_trace(item.trace), item.output)
        for name, text in views.items():
            values[name] = untrusted_block(text, values["tag"])
    if "{scenario}" in template:
        values["scenario"] = case_scenario(item.case_input) or "(no scenario)"
    return fill(template, values)


def cache_key(model: str, version_id: int, prompt: str) -> str:
    return hashlib.sha256(f"{model}\x00{version_id}\x00{prompt}".encode()).hexdigest()


@dataclass(frozen=True)
class JudgeTask:
    ref: Any  # the caller's handle, e.g. (case id, grader id)
    version: RubricVersion
    prompt: str

    @cached_property  # asked several times per task; a frozen dataclass keeps it valid
    def key(self) -> str:
        return cache_key(self.version.model, self.version.pk, self.prompt)


@dataclass(frozen=True)
class JudgeOutcome:
    score: float | None
    passed: bool | None
    rationale: str = ""
    error: str = ""
    raw: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False


def _outcome(version: RubricVersion, score: float, passed: bool, **fields: Any) -> JudgeOutcome:
    # Pass needs both the judge's own verdict and a score at the rubric's threshold.
    return JudgeOutcome(score=score, passed=passed and score >= version.pass_threshold, **fields)


def cached_keys(keys: list[str]) -> set[str]:
    """Which of these task keys the judge cache already answers (they cost no call)."""
    return set(JudgeCacheEntry.objects.filter(key__in=set(keys)).values_list("key", flat=True))


def run_judges(tasks: list[JudgeTask]) -> dict[Any, JudgeOutcome]:
    """Answer every task: cached answers first (one query), then live calls concurrently,
    at most ``max_concurrency`` in flight per endpoint in this process."""
    outcomes: dict[Any, JudgeOutcome] = {}
    cached = {e.key: e for e in JudgeCacheEntry.objects.filter(key__in={t.key for t in tasks})}
    live: dict[int, list[JudgeTask]] = {}
    for task in tasks:
        entry = cached.get(task.key)
        if entry is not None:
            outcomes[task.ref] = _outcome(
                task.version,
                entry.score,
                entry.passed,
                rationale=entry.rationale,
                raw=entry.raw_response,
                cached=True,
            )
        else:
            live.setdefault(task.version.endpoint_id, []).append(task)
    fresh: list[dict[str, Any]] = []
    for endpoint_tasks in live.values():
        endpoint = endpoint_tasks[0].version.endpoint
        # Identical prompts in one batch are asked once.
        unique = {task.key: task for task in endpoint_tasks}
        with ThreadPoolExecutor(max_workers=endpoint.max_concurrency) as pool:
            answers = dict(zip(unique, pool.map(_ask, unique.values()), strict=True))
        for task in endpoint_tasks:
            answer = answers[task.key]
            if isinstance(answer, str):
                outcomes[task.ref] = JudgeOutcome(score=None, passed=None, error=answer)
                continue
            outcomes[task.ref] = _outcome(
                task.version,
                answer.score,
                answer.passed,
                rationale=answer.rationale,
                raw=answer.raw,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                cost_usd=endpoint.cost_usd(answer.input_tokens, answer.output_tokens),
            )
        fresh += [
            {
                "key": key,
                "model": task.version.model,
                "rubric_version_id": task.version.pk,
                "score": answers[key].score,
                "passed": answers[key].passed,
                "rationale": answers[key].rationale,
                "raw_response": answers[key].raw,
                "input_tokens": answers[key].input_tokens,
                "output_tokens": answers[key].output_tokens,
            }
            for key, task in unique.items()
            if not isinstance(answers[key], str)
        ]
    remember(fresh)
    return outcomes


def remember(entries: list[dict[str, Any]]) -> None:
    """Store fresh answers in the judge cache. Another worker may have cached the same prompt
    meanwhile: the first answer wins."""
    if not entries:
        return
    if connection.vendor == "postgresql":
        # COPY, as the chunk's results are written: the ORM's bulk insert was the largest part
        # of a judge chunk's own work. One transaction for its statements, not one each.
        with transaction.atomic():
            copy_insert(JudgeCacheEntry, entries, skip_conflicts_on=("key",))
    else:
        JudgeCacheEntry.objects.bulk_create((JudgeCacheEntry(**e) for e in entries), ignore_conflicts=True)


def _ask(task: JudgeTask) -> "llm.JudgeAnswer | str":
    """A judge's answer, or the error text (a grade error, never a pass)."""
    # openai (~0.5 s of CPU to import) is imported when a judge is first asked, not with the
    # run's modules: a run of code graders never needs it. Workers preload it before forking
    # (EVALGATE_WORKER_PRELOAD), so their work horses inherit it.
    from grading_app import llm

    try:
        return llm.judge(task.version.endpoint, task.version.model, task.prompt)
    except llm.JudgeError as exc:
        return str(exc)
