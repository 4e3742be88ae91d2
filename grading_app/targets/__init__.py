"""Targets: how a run obtains the candidate's output for a case.

``submitted`` reads what the deploy script uploaded; ``openai_chat`` asks a chat model
(through grading_app.llm); ``http`` posts the case to the team's own service
(grading_app.targets.http, the one module that calls it). Every kind returns a Produced.
"""

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError

from grading_app.choices import TargetKind


class ChunkCase(NamedTuple):
    """What grading reads of a case: a chunk's thousand cases as plain tuples, not model
    instances (Case.__init__ per row was a tenth of a code-graded chunk's reading)."""

    pk: int
    key: str
    tier: str
    revision: int
    input: dict[str, Any]
    expected: dict[str, Any]
    failure_class_slug: str


@dataclass
class Produced:
    """A candidate's output for one case, its trace and metrics, or why there is none."""

    output: Any = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    missing: bool = False


CONFIG_KEYS = {
    TargetKind.SUBMITTED: {},
    TargetKind.OPENAI_CHAT: {
        "model": str,
        "system_prompt": str,
        "params": dict,
        "tools": list,
        "max_tool_rounds": int,
    },
    TargetKind.HTTP: {"url": str, "headers_env": dict, "timeout_s": (int, float)},
}
REQUIRED = {TargetKind.OPENAI_CHAT: ("model",), TargetKind.HTTP: ("url",)}


def validate_target_config(kind: str, config: Any) -> dict[str, Any]:
    """Check a target's config against its kind; ValidationError names the key."""
    if kind not in CONFIG_KEYS:
        raise ValidationError({"kind": f"Unknown target kind {kind!r}."})
    config = config or {}
    if not isinstance(config, dict):
        raise ValidationError({"config": "Config must be a JSON object."})
    allowed = CONFIG_KEYS[kind]
    errors = {}
    for key, value in config.items():
        if key not in allowed:
            errors[f"config.{key}"] = f"unknown key for {kind} (allowed: {', '.join(allowed) or 'none'})"
        elif not isinstance(value, allowed[key]):
            errors[f"config.{key}"] = "has the wrong type"
    for key in REQUIRED.get(kind, ()):
        if not config.get(key):
            errors[f"config.{key}"] = "is required"
    rounds = config.get("max_tool_rounds")
    if isinstance(rounds, int) and (isinstance(rounds, bool) or not 1 <= rounds <= 20):
        errors["config.max_tool_rounds"] = "must be between 1 and 20"
    if kind == TargetKind.HTTP and config.get("url", "").split("://")[0] not in ("http", "https"):
        errors["config.url"] = "must be an http(s) URL"
    if errors:
        raise ValidationError({"config": [f"{k}: {v}" for k, v in errors.items()]})
    return config
