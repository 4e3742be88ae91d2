"""promptfoo's prompts rendered with a test's vars into the chat messages a case sends.

promptfoo writes templates in Nunjucks; Jinja2 reads the same `{{ var }}`, filters and
`{% if %}` syntax. It runs sandboxed: a template is data from a file, never code. A rendered
prompt that is a JSON list of messages is a chat prompt, as promptfoo reads it.
"""

import itertools
import json
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

# Evalgate's own promptfoo export writes cases that have no template through this prompt,
# with their messages in this var; importing it back gives the messages, not the var.
MESSAGES_VAR = "_evalgate_messages"
MESSAGES_TEMPLATE = "{{ " + MESSAGES_VAR + " | dump }}"


def _dump(value: Any, indent: int | None = None) -> str:
    # Nunjucks' dump is JSON.stringify: compact separators, unicode kept.
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(value, ensure_ascii=False, separators=separators, indent=indent)


def _js_string(value: Any) -> Any:
    """A value printed into a template as JavaScript's String() prints it in Nunjucks."""
    if value is None:
        return ""  # Nunjucks prints null and undefined as nothing
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(_js_string(item)) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True, finalize=_js_string)
    env.filters["dump"] = _dump
    return env


_ENV = _environment()


class RenderError(ValueError):
    """The template uses something Jinja2 cannot render the way Nunjucks would."""


def render(template: str, variables: dict[str, Any]) -> str:
    try:
        return _ENV.from_string(template).render(**variables)
    except TemplateError as exc:
        raise RenderError(str(exc)) from None


def as_messages(text: str) -> list[dict[str, Any]]:
    """A rendered prompt as chat messages: a JSON list of {role, content} is one already."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if (
            isinstance(value, list)
            and value
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value)
        ):
            return value
    return [{"role": "user", "content": text}]


def expand_vars(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """promptfoo turns a test whose vars hold lists into one test per combination of their
    items (unless the test disables var expansion): the same here, in promptfoo's order."""
    # Only lists of text expand (promptfoo keeps a list of objects or numbers as one value).
    listed = [
        name
        for name, value in variables.items()
        if isinstance(value, list) and value and isinstance(value[0], str)
    ]
    if not listed:
        return [variables]
    combos = itertools.product(*(variables[name] for name in listed))
    return [{**variables, **dict(zip(listed, combo, strict=True))} for combo in combos]
