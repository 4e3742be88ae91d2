"""Redaction rules of a source: regexes per field, applied to every string before storage."""

import re
from dataclasses import dataclass
from typing import Any

FIELDS = ("input", "output", "trace", "metadata", "feedback")
# Common patterns by name, so a source owner need not write (and get wrong) the regex.
PRESETS: dict[str, tuple[str, str]] = {
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[email]"),
    # 13-19 digits, optionally grouped by spaces or dashes: every card scheme's length.
    "card_number": (r"\b(?:\d[ -]?){12,18}\d\b", "[card]"),
    "phone": (r"(?<!\w)\+?\d[\d ()-]{7,}\d(?!\w)", "[phone]"),
    "ipv4": (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[ip]"),
}
RULE_KEYS = {"field", "pattern", "preset", "replacement"}


@dataclass(frozen=True)
class Rule:
    fields: tuple[str, ...]
    regex: re.Pattern[str]
    replacement: str


def compile_rules(raw: Any) -> list[Rule]:
    """The rules as compiled regexes; ValueError naming the bad rule (``redaction[2].pattern``)."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise ValueError("redaction: a list of rules.")
    rules = []
    for index, spec in enumerate(raw):
        where = f"redaction[{index}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: a rule is an object with field and pattern (or preset).")
        if unknown := sorted(set(spec) - RULE_KEYS):
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}.")
        field = spec.get("field", "*")
        if field != "*" and field not in FIELDS:
            raise ValueError(f"{where}.field: one of {', '.join(FIELDS)} or *.")
        if ("pattern" in spec) == ("preset" in spec):
            raise ValueError(f"{where}: give a pattern or a preset ({', '.join(PRESETS)}), not both.")
        if "preset" in spec:
            if spec["preset"] not in PRESETS:
                raise ValueError(f"{where}.preset: one of {', '.join(PRESETS)}.")
            pattern, replacement = PRESETS[spec["preset"]]
        else:
            pattern, replacement = spec["pattern"], "[redacted]"
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"{where}.pattern: a regular expression.")
        replacement = spec.get("replacement", replacement)
        if not isinstance(replacement, str):
            raise ValueError(f"{where}.replacement: text.")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{where}.pattern: not a valid regular expression ({exc}).") from None
        # A replacement is literal text: a backslash in it must never be read as a group.
        rules.append(Rule(FIELDS if field == "*" else (field,), regex, replacement.replace("\\", "\\\\")))
    return rules


def _scrub(value: Any, rules: list[Rule]) -> Any:
    if isinstance(value, str):
        for rule in rules:
            value = rule.regex.sub(rule.replacement, value)
        return value
    if isinstance(value, list):
        return [_scrub(item, rules) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, rules) for key, item in value.items()}
    return value


def redact(record: dict[str, Any], rules: list[Rule]) -> dict[str, Any]:
    """A copy of the record with each field's strings (at any depth) scrubbed by its rules."""
    if not rules:
        return record
    redacted = dict(record)
    for field in FIELDS:
        applicable = [rule for rule in rules if field in rule.fields]
        if applicable and field in redacted:
            redacted[field] = _scrub(redacted[field], applicable)
    return redacted


def redact_everything(value: Any, rules: list[Rule]) -> Any:
    """Every string under ``value`` scrubbed by every rule: for data (a raw OTLP span) whose
    fields are not known yet, redaction errs towards removing more, never less."""
    return _scrub(value, rules)
