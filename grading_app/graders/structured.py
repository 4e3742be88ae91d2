"""Code graders on structured output: is it JSON, does it contain JSON, what is at a JSON path,
does it match an ideal as OpenAI Evals' JsonMatch decides."""

import json
from typing import Any, ClassVar

from django.core.exceptions import ValidationError

from evalproject.lazy import lazy_module
from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput
from grading_app.graders.schema import STRICT_JSON, build_validator, loads_json

# Imported when first used, not at start-up (evalproject.lazy).
jsonpath = lazy_module("jsonpath")
jsonschema = lazy_module("jsonschema")

_DECODER = STRICT_JSON
MAX_JSON_CANDIDATES = 1000  # bounds the scan of a long output for embedded JSON


def parse_json(output: Any) -> tuple[bool, Any]:
    """(True, value) when the output is JSON (a JSON output, or text that parses whole)."""
    if output is None:
        return False, None
    if not isinstance(output, str):
        return True, output
    try:
        return True, loads_json(output)
    except ValueError:
        return False, None


def same_json(left: Any, right: Any) -> bool:
    """JSON equality: 1 equals 1.0 (JSON has one number type), but true never equals 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same_json(a, b) for a, b in zip(left, right, strict=True))
    return left == right


def embedded_json(text: str) -> list[Any]:
    """Every JSON object or array written somewhere in ``text`` (fenced or in prose), in order;
    one nested inside another is not listed again."""
    found: list[Any] = []
    position, tries = 0, 0
    while tries < MAX_JSON_CANDIDATES:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        tries += 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        found.append(value)
        position = end
    return found


def _schema_problem(schema: Any, value: Any, check_formats: bool) -> str:
    """Why ``value`` does not satisfy ``schema``, or "" when it does."""
    errors = list(build_validator(schema, check_formats=check_formats).iter_errors(value))
    if not errors:
        return ""
    first = jsonschema.exceptions.best_match(errors)
    return f"{first.json_path}: {first.message[:200]}"


def _checked_schema(value: Any, settings: dict[str, Any], where: str) -> Any:
    """The schema an is_json / contains_json assertion asks for (None: any JSON)."""
    if value is not True:
        raise ValueError(f"{where} must be true, or an object with a schema")
    schema = settings["schema"]
    if schema is not None:
        try:
            build_validator(schema, check_formats=False)
        except jsonschema.exceptions.SchemaError as exc:
            raise ValueError(f"{where}.schema is not a valid JSON Schema: {exc.message}") from None
    return schema


@register
class JsonValid(GraderKind):
    key = "json_valid"
    dimension = "format"
    description = "The output is valid JSON (optionally: an object). Applies to every case in scope."
    config_fields = {
        "require_object": ConfigField(bool, False, "Only a JSON object counts."),
    }

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        if item.output is None:
            return GradeOutcome(0.0, False, "no output")
        value = item.output
        if isinstance(value, str):
            try:
                value = loads_json(value)
            except ValueError as exc:
                return GradeOutcome(0.0, False, f"not valid JSON: {exc}")
        if config["require_object"] and not isinstance(value, dict):
            return GradeOutcome(0.0, False, f"JSON is a {type(value).__name__}, not an object")
        return GradeOutcome(1.0, True, "valid JSON")


class _JsonFound(GraderKind):
    """is_json / contains_json: JSON where the kind looks for it, optionally satisfying a schema."""

    dimension = "format"
    case_options = ("schema",)
    value_required = False
    none_found: ClassVar[str]  # the rationale when no JSON is found

    def candidates(self, item: GradingInput) -> list[Any]:
        """The JSON values the kind considers (empty: none found)."""
        raise NotImplementedError

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            schema = _checked_schema(value, settings, f"expected.{key}")
            candidates = self.candidates(item)
            if not candidates:
                return GradeOutcome(0.0, False, self.none_found)
            if schema is None:
                return GradeOutcome(1.0, True, f"JSON found ({len(candidates)} value(s))")
            problems = [_schema_problem(schema, c, settings["check_formats"]) for c in candidates]
            if "" in problems:
                return GradeOutcome(1.0, True, "JSON satisfying the schema")
            return GradeOutcome(0.0, False, f"JSON, but not as the schema says: {problems[0]}")

        return self.grade_assertions(item.expected, key, config, check)


def _json_fields(key: str) -> dict[str, ConfigField]:
    return {
        "expected_field": ConfigField(str, key, "Key of expected."),
        "schema": ConfigField(dict, None, "A JSON Schema the JSON must satisfy (a case's schema wins)."),
        "check_formats": ConfigField(bool, False, "Also assert 'format' (date, email, uuid, ...)."),
    }


@register
class IsJson(_JsonFound):
    key = "is_json"
    description = (
        'The whole output is JSON, for cases with expected.is_json: true, or {"schema": {...}} '
        "to also satisfy a JSON Schema (promptfoo's is-json)."
    )
    config_fields = _json_fields("is_json")
    none_found = "the output is not JSON"

    def candidates(self, item: GradingInput) -> list[Any]:
        ok, parsed = parse_json(item.output)
        return [parsed] if ok else []


@register
class ContainsJson(_JsonFound):
    key = "contains_json"
    description = (
        "The output contains a JSON object or array somewhere in its text (prose or a code "
        "fence around it is fine), for cases with expected.contains_json: true, or "
        '{"schema": {...}}: then some embedded value must satisfy it (promptfoo\'s contains-json).'
    )
    config_fields = _json_fields("contains_json")
    none_found = "no JSON object or array in the output"

    def candidates(self, item: GradingInput) -> list[Any]:
        ok, parsed = parse_json(item.output)
        return [parsed] if ok and isinstance(parsed, dict | list) else embedded_json(item.output_text)


def _compiled_path(path: Any, where: str) -> Any:
    if not isinstance(path, str) or not path:
        raise ValueError(f"{where} needs a path (RFC 9535 JSONPath, e.g. $.order.total)")
    try:
        return jsonpath.compile(path, strict=True)
    except jsonpath.JSONPathError as exc:
        raise ValueError(f"{where}: invalid JSONPath {path!r}: {str(exc).splitlines()[0]}") from None


@register
class JsonPath(GraderKind):
    key = "json_path"
    dimension = "correctness"
    description = (
        "The value at a JSONPath (RFC 9535) of the JSON output equals the expected one: "
        'expected.json_path is {"path": "$.order.total", "value": 42}, or a list of them '
        "(each must hold). A path matching several nodes is compared as the list of them."
    )
    config_fields = {
        "expected_field": ConfigField(str, "json_path", "Key of expected."),
        "path": ConfigField(str, None, "The path for every case (a case's path wins)."),
    }
    case_options = ("path",)

    def check_config(self, config: dict[str, Any]) -> None:
        if config["path"] is not None:
            try:
                _compiled_path(config["path"], "config.path")
            except ValueError as exc:
                raise ValidationError({"config": f"json_path: {exc}"}) from None

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]

        def check(value: Any, settings: dict[str, Any]) -> GradeOutcome:
            path = _compiled_path(settings["path"], f"expected.{key}")
            ok, parsed = parse_json(item.output)
            if not ok:
                return GradeOutcome(0.0, False, "the output is not JSON")
            nodes = path.findall(parsed)
            if not nodes:
                return GradeOutcome(0.0, False, f"{settings['path']} matches nothing")
            got = nodes[0] if len(nodes) == 1 else nodes
            shown = json.dumps(got, ensure_ascii=False)[:120]
            if same_json(got, value):
                return GradeOutcome(1.0, True, f"{settings['path']} is {shown}")
            want = json.dumps(value, ensure_ascii=False)[:120]
            return GradeOutcome(0.0, False, f"{settings['path']} is {shown}, expected {want}")

        return self.grade_assertions(item.expected, key, config, check)


def evals_json_match(sampled: Any, correct: Any) -> bool:
    """OpenAI Evals' json_match (evals/elsuite/basic/json_match.py), the same rule: objects match
    key by key over the keys of both (a key one lacks is a missing value), lists position by
    position at equal length, anything else by Python's == (true == 1, 1 == 1.0); a missing
    value or null never matches, not even null."""
    if sampled is None or correct is None:
        return False
    if isinstance(sampled, dict):
        return isinstance(correct, dict) and all(
            evals_json_match(sampled.get(key), correct.get(key)) for key in sampled.keys() | correct.keys()
        )
    if isinstance(sampled, list):
        return (
            isinstance(correct, list)
            and len(sampled) == len(correct)
            and all(evals_json_match(s, c) for s, c in zip(sampled, correct, strict=True))
        )
    return bool(sampled == correct)


@register
class JsonMatch(GraderKind):
    key = "json_match"
    dimension = "correctness"
    description = (
        "OpenAI Evals' JsonMatch: the whole output parsed as JSON (Python's json.loads; not JSON "
        "never matches) matches one of expected.json_match's ideals (JSON texts, one or a list) "
        "as evals' json_match decides: keys both ways, lists by position, values by Python's == "
        "(true equals 1, 1 equals 1.0), and null never matching."
    )
    config_fields = {
        "expected_field": ConfigField(str, "json_match", "Key of expected holding the ideal(s).")
    }

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        key = config["expected_field"]
        ideals = item.expected.get(key)
        if ideals is None:
            return None
        texts = [ideals] if isinstance(ideals, str) else ideals
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"expected.{key} must be a JSON text or a non-empty list of them")
        try:
            correct = [json.loads(text) for text in texts]
        except ValueError as exc:
            raise ValueError(f"expected.{key}: an ideal is not JSON: {exc}") from None
        try:
            # evals parses the sampled text whole; a JSON output is its text.
            sampled = None if item.output is None else json.loads(item.output_text)
        except ValueError:
            return GradeOutcome(0.0, False, "the output is not JSON")
        except RecursionError:
            raise ValueError("the output's JSON is nested too deeply to compare") from None
        for text, ideal in zip(texts, correct, strict=True):
            if evals_json_match(sampled, ideal):
                return GradeOutcome(1.0, True, f"matches the ideal {text[:120]}")
        return GradeOutcome(0.0, False, f"matches no ideal (of {len(texts)}): {item.output_text[:120]!r}")
