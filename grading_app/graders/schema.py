"""Code grader on structured output: does the JSON satisfy a JSON Schema (format compliance)."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError

from evalproject.lazy import lazy_module
from grading_app.graders import register
from grading_app.graders.base import ConfigField, GradeOutcome, GraderKind, GradingInput

jsonschema = lazy_module("jsonschema")  # imported by the first schema check, not at start-up


def _not_json(constant: str) -> None:
    # Python's json module reads NaN, Infinity and -Infinity; JSON (RFC 8259) has no such
    # values, and JSON.parse (promptfoo's is-json, any JavaScript consumer) refuses them.
    raise ValueError(f"{constant} is not JSON")


STRICT_JSON = json.JSONDecoder(parse_constant=_not_json)
loads_json = STRICT_JSON.decode  # json.loads without the non-JSON constants

_MESSAGE_LIMIT = 200  # jsonschema messages quote the instance, which may be the whole output


def build_validator(schema: Any, *, check_formats: bool) -> jsonschema.protocols.Validator:
    """A validator for ``schema``: its own ``$schema`` draft, else 2020-12; SchemaError if invalid."""
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    # "format" is only an annotation in 2020-12; asserting it is opt-in, as the spec says.
    checker = validator_class.FORMAT_CHECKER if check_formats else None
    return validator_class(schema, format_checker=checker)


@register
class JsonSchema(GraderKind):
    key = "json_schema"
    dimension = "format"
    description = "The output (JSON, or text parsed as JSON) satisfies the JSON Schema in expected.schema."
    config_fields = {
        "expected_field": ConfigField(str, "schema", "Key of expected holding the schema."),
        "schema": ConfigField(dict, None, "A fixed schema for every case instead of expected."),
        "check_formats": ConfigField(bool, False, "Also assert 'format' (date, email, uuid, ...)."),
    }

    def check_config(self, config: dict[str, Any]) -> None:
        if config["schema"] is not None:
            try:
                build_validator(config["schema"], check_formats=False)
            except jsonschema.exceptions.SchemaError as exc:
                raise ValidationError(
                    {"config": f"json_schema: config.schema is not a valid JSON Schema: {exc.message}"}
                ) from exc

    def grade(self, item: GradingInput, config: dict[str, Any]) -> GradeOutcome | None:
        # "is not None", not truthiness: {} is a valid schema (anything goes).
        schema = config["schema"]
        if schema is None:
            schema = item.expected.get(config["expected_field"])
        if schema is None:
            return None
        try:
            validator = build_validator(schema, check_formats=config["check_formats"])
        except jsonschema.exceptions.SchemaError as exc:
            # The case itself is broken, not the candidate: report it, never pass it.
            raise ValueError(f"invalid JSON Schema in case: {exc.message}") from exc
        value = item.output
        if value is None:
            return GradeOutcome(0.0, False, "no output")
        if isinstance(value, str):
            try:
                value = loads_json(value)
            except ValueError as exc:
                return GradeOutcome(0.0, False, f"not valid JSON: {exc}")
        errors = list(validator.iter_errors(value))
        if not errors:
            return GradeOutcome(1.0, True, "output satisfies the schema")
        # best_match is the error jsonschema.validate() itself would raise: shallowest first.
        first = jsonschema.exceptions.best_match(errors)
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return GradeOutcome(0.0, False, f"{first.json_path}: {first.message[:_MESSAGE_LIMIT]}{more}")
