"""Code graders on the tools a system called: which, in what order, how often, with what
arguments, with what errors (tool_calls), and whether each call fits its definition
(tool_schema)."""

import json
import re
from collections import Counter
from typing import Any

from django.core.exceptions import ValidationError

from evalproject.lazy import lazy_module
from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.expected import flag, non_negative_number, string_list
from grading_app.graders.schema import build_validator
from grading_app.graders.structured import same_json
from grading_app.traces import normalise_trace, tool_sequence

jsonschema = lazy_module("jsonschema")  # imported by the first schema check, not at start-up

ARGUMENT_MATCHES = ("exact", "subset", "regex", "schema")


def _is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    remaining = iter(seen)
    # "in" consumes the iterator up to the match, so order is enforced and gaps allowed.
    return all(name in remaining for name in wanted)


def step_errored(step: dict[str, Any]) -> bool:
    """A tool step that failed: ``error`` set, ``is_error``/``isError`` true (MCP), or
    ``status: "error"``."""
    return (
        bool(step.get("error"))
        or step.get("is_error") is True
        or step.get("isError") is True
        or (step.get("status") == "error")
    )


def _canonical(arguments: Any) -> str:
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)


def _subset(want: Any, got: Any) -> bool:
    """Every key of ``want`` is in ``got`` with the same value (objects compared likewise)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _subset(v, got[k]) for k, v in want.items())
    return same_json(want, got)


def _argument_specs(expected: dict[str, Any]) -> dict[str, list[tuple[str, Any, str]]]:
    """expected.tool_arguments as {tool: [(match, value, all|any)]}; ValueError naming a bad one."""
    raw = expected.get("tool_arguments")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("expected.tool_arguments must be an object of tool name -> argument check")
    specs: dict[str, list[tuple[str, Any, str]]] = {}
    for tool, entries in raw.items():
        for index, spec in enumerate(entries if isinstance(entries, list) else [entries]):
            where = f"expected.tool_arguments.{tool}" + (f"[{index}]" if isinstance(entries, list) else "")
            if not isinstance(spec, dict):
                raise ValueError(f'{where} must be an object such as {{"subset": {{...}}}}')
            matches = [m for m in ARGUMENT_MATCHES if m in spec]
            unknown = sorted(set(spec) - {*ARGUMENT_MATCHES, "calls"})
            if len(matches) != 1 or unknown:
                raise ValueError(
                    f"{where} needs exactly one of {', '.join(ARGUMENT_MATCHES)} (and optional calls)"
                )
            match, value = matches[0], spec[matches[0]]
            calls = spec.get("calls", "all")
            if calls not in ("all", "any"):
                raise ValueError(f"{where}.calls must be all or any")
            if match in ("exact", "subset", "regex") and not isinstance(value, dict):
                raise ValueError(f"{where}.{match} must be an object of argument names")
            if match == "regex":
                for name, pattern in value.items():
                    try:
                        re.compile(pattern)
                    except (re.error, TypeError) as exc:
                        raise ValueError(f"{where}.regex.{name} is not a valid pattern: {exc}") from None
            if match == "schema":
                try:
                    build_validator(value, check_formats=False)
                except jsonschema.exceptions.SchemaError as exc:
                    raise ValueError(f"{where}.schema is not a valid JSON Schema: {exc.message}") from None
            specs.setdefault(tool, []).append((match, value, calls))
    return specs


def _argument_problem(match: str, want: Any, arguments: Any) -> str:
    """Why ``arguments`` fail the check, or "" when they pass."""
    if match == "schema":
        errors = list(build_validator(want, check_formats=False).iter_errors(arguments))
        if not errors:
            return ""
        first = jsonschema.exceptions.best_match(errors)
        return f"{first.json_path}: {first.message[:120]}"
    if not isinstance(arguments, dict):
        return f"arguments are not an object: {str(arguments)[:80]!r}"
    if match == "exact":
        return "" if same_json(want, arguments) else f"arguments {_canonical(arguments)[:120]}"
    if match == "subset":
        return "" if _subset(want, arguments) else f"arguments {_canonical(arguments)[:120]}"
    for name, pattern in want.items():
        if name not in arguments:
            return f"no argument {name}"
        value = arguments[name]
        text = value if isinstance(value, str) else _canonical(value)
        if not re.search(pattern, text):
            return f"{name}={text[:60]!r} does not match /{pattern}/"
    return ""


@register
class ToolCalls(GraderKind):
    key = "tool_calls"
    dimension = "trace"
    description = (
        "Tool use matches expected.tools (optionally in order), avoids expected.forbidden_tools, "
        "stays within expected.max_tool_calls, calls tools with the arguments in "
        "expected.tool_arguments, has at most expected.max_tool_errors failed steps, and repeats "
        "no identical call more than max_repeats times (default 1: any repeat fails)."
    )
    config_fields = {
        "max_repeats": ConfigField(
            int, 1, "Most times one identical call (same tool and arguments) may run; 0: any."
        ),
        "max_tool_errors": ConfigField(int, None, "Most tool steps that may fail (none: not checked)."),
    }

    def check_config(self, config: dict[str, Any]) -> None:
        for name in ("max_repeats", "max_tool_errors"):
            if config[name] is not None and config[name] < 0:
                raise ValidationError({"config": f"tool_calls: config.{name} must be >= 0."})

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        required = string_list(item.expected, "tools") or []
        ordered = flag(item.expected, "tools_ordered")
        forbidden = string_list(item.expected, "forbidden_tools") or []
        limit = non_negative_number(item.expected, "max_tool_calls", integer=True)
        arguments = _argument_specs(item.expected)
        max_errors = non_negative_number(item.expected, "max_tool_errors", integer=True)
        max_repeats = non_negative_number(item.expected, "max_repeats", integer=True)
        if ordered and not required:
            raise ValueError("expected.tools_ordered needs the tools in expected.tools")
        if (
            not (required or forbidden or arguments)
            and limit is None
            and max_errors is None
            and max_repeats is None
        ):
            return None
        steps = [s for s in normalise_trace(item.trace) if s.get("type") == "tool_call"]
        calls = tool_sequence(steps)
        # One entry per check that applies: (passed, what was wrong).
        checks: list[tuple[bool, str]] = []
        if required:
            # A tool listed twice must be called twice.
            missing = list((Counter(required) - Counter(calls)).elements())
            checks.append((not missing, f"not called: {', '.join(missing)}"))
            if ordered:
                in_order = _is_subsequence(required, calls)
                # When a tool is missing the order fails too; saying so twice helps nobody.
                why = "" if missing else f"out of order: expected {' -> '.join(required)}"
                checks.append((in_order, why))
        if forbidden:
            called = sorted(set(calls) & set(forbidden))
            checks.append((not called, f"forbidden tool(s) called: {', '.join(called)}"))
        if limit is not None:
            checks.append((len(calls) <= limit, f"{len(calls)} tool calls, limit {limit}"))
        for tool, specs in arguments.items():
            checks.append(self._arguments_check(tool, specs, steps))
        errored = [f"{s.get('name', '')} (step {i})" for i, s in enumerate(steps) if step_errored(s)]
        if max_errors is None:
            max_errors = config.get("max_tool_errors")
        if max_errors is not None:
            checks.append(
                (
                    len(errored) <= max_errors,
                    f"{len(errored)} tool step(s) failed, at most {max_errors}: {', '.join(errored)}",
                )
            )
        explicit_repeats = max_repeats is not None
        if max_repeats is None:
            max_repeats = config.get("max_repeats", 1)
        counts = Counter((s.get("name", ""), _canonical(s.get("arguments"))) for s in steps)
        repeated = [
            f"{name}({args[:80]}) x{n}"
            for (name, args), n in counts.items()
            if max_repeats and n > max_repeats
        ]
        # Counted in the score only when the case asks or a call repeats, so a case that
        # repeats nothing scores as it did before this check existed.
        if explicit_repeats or repeated:
            checks.append(
                (
                    not repeated,
                    f"repeated identical call(s), at most {max_repeats} each: {', '.join(repeated)}",
                )
            )
        problems = [why for ok, why in checks if not ok and why]
        score = sum(ok for ok, _ in checks) / len(checks)
        seen = f"called: {' -> '.join(calls) or 'nothing'}"
        if errored and max_errors is None:
            seen += f"; {len(errored)} failed"
        if problems:
            return GradeOutcome(score, False, f"{'; '.join(problems)} ({seen})")
        return GradeOutcome(1.0, True, f"tool use as expected ({seen})")

    @staticmethod
    def _arguments_check(
        tool: str, specs: list[tuple[str, Any, str]], steps: list[dict[str, Any]]
    ) -> tuple[bool, str]:
        tool_steps = [s for s in steps if s.get("name") == tool]
        if not tool_steps:
            return False, f"{tool} never called, so its arguments could not be checked"
        for match, want, calls in specs:
            problems = [_argument_problem(match, want, s.get("arguments")) for s in tool_steps]
            failed = [p for p in problems if p]
            if failed if calls == "all" else len(failed) == len(problems):
                return False, f"{tool} arguments fail the {match} check: {failed[0]}"
        return True, ""


def tool_parameters(definitions: Any, where: str) -> dict[str, Any]:
    """{tool name: JSON Schema of its arguments} from tool definitions in the shapes people keep
    them: OpenAI chat tools ({"type": "function", "function": {...}}), Responses API and legacy
    functions ({"name", "parameters"}), Anthropic ({"name", "input_schema"})."""
    if not isinstance(definitions, list) or not definitions:
        raise ValueError(f"{where} must be a non-empty list of tool definitions")
    schemas: dict[str, Any] = {}
    for index, definition in enumerate(definitions):
        spec = definition.get("function", definition) if isinstance(definition, dict) else None
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}[{index}] needs a name (OpenAI tool, function or Anthropic tool shape)")
        schema = spec.get("parameters", spec.get("input_schema", {}))
        try:
            build_validator(schema, check_formats=False)
        except jsonschema.exceptions.SchemaError as exc:
            raise ValueError(
                f"{where}[{index}] parameters are not a valid JSON Schema: {exc.message}"
            ) from None
        schemas[name] = schema
    return schemas


def _call_from(value: Any) -> dict[str, Any] | None:
    """A {name, arguments} call from one of OpenAI's call shapes, or None."""
    if not isinstance(value, dict):
        return None
    value = value.get("function_call") or value.get("function") or value
    if isinstance(value, dict) and isinstance(value.get("name"), str) and "arguments" in value:
        return {"name": value["name"], "arguments": value["arguments"]}
    return None


def calls_in_output(output: Any) -> list[dict[str, Any]]:
    """Tool calls written as the output itself (a function_call object, a list of tool calls,
    {"tool_calls": [...]}, or the same as JSON text): what promptfoo's function-call checks read."""
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            return []
    if isinstance(output, dict) and isinstance(output.get("tool_calls"), list):
        output = output["tool_calls"]
    items = output if isinstance(output, list) else [output]
    calls = [_call_from(item) for item in items]
    return [c for c in calls if c is not None] if all(calls) else []


@register
class ToolSchema(GraderKind):
    key = "tool_schema"
    dimension = "trace"
    description = (
        "Every tool call (the trace's, else the output's own function call or tool calls) names a "
        "tool of expected.tool_definitions and has arguments valid against its JSON Schema "
        "(promptfoo's is-valid-openai-function-call and is-valid-openai-tools-call)."
    )
    config_fields = {
        "require_call": ConfigField(bool, True, "No call at all fails (a case's require_call wins)."),
    }

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        raw = item.expected.get("tool_definitions")
        if raw is None:
            return None
        require_call = config["require_call"]
        # Definitions are a list of objects, so the object form is told apart by its "value".
        if isinstance(raw, dict):
            unknown = sorted(set(raw) - {"value", "require_call"})
            if "value" not in raw or unknown:
                raise ValueError(
                    'expected.tool_definitions is a list, or {"value": [...], "require_call": bool}'
                )
            require_call = raw.get("require_call", require_call)
            if not isinstance(require_call, bool):
                raise ValueError("expected.tool_definitions.require_call must be true or false")
            raw = raw["value"]
        schemas = tool_parameters(raw, "expected.tool_definitions")
        steps = [s for s in normalise_trace(item.trace) if s.get("type") == "tool_call"]
        calls = steps or calls_in_output(item.output)
        if not calls:
            passed = not require_call
            return GradeOutcome(
                float(passed), passed, "no tool call" + ("" if passed else ", and one is required")
            )
        problems = []
        for index, call in enumerate(calls):
            name, arguments = call.get("name", ""), call.get("arguments")
            if name not in schemas:
                problems.append(f"call {index}: {name!r} is not a defined tool")
                continue
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments or "{}")
                except ValueError:
                    problems.append(f"call {index} ({name}): arguments are not JSON: {arguments[:80]!r}")
                    continue
            errors = list(build_validator(schemas[name], check_formats=False).iter_errors(arguments))
            if errors:
                first = jsonschema.exceptions.best_match(errors)
                problems.append(f"call {index} ({name}): {first.json_path}: {first.message[:120]}")
        if problems:
            return GradeOutcome(1 - len(problems) / len(calls), False, "; ".join(problems))
        return GradeOutcome(1.0, True, f"{len(calls)} call(s) valid against their definitions")
