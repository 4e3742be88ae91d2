"""inspect_ai datasets (JSONL, a JSON array or CSV): each record a Sample with `input` (text
or chat messages), `target` (text or a list), `choices`, `id` and `metadata`. --input-field
and --ideal-field rename input and target on every shape.

The target's check is the task's scorer, which lives in Python, not in the dataset: give it
with --reference-as (includes() is contains_any, exact() is answer, ...). `choices` go into
the input's vars for the multiple-choice prompt; `files`, `setup` and `sandbox` are not
carried (they prepare a sandbox, which Evalgate does not run)."""

import json
from typing import Any

from datasets_app.importers.base import Batch, kind_of
from datasets_app.importers.checks import carry_reference
from datasets_app.importers.records import records, user_turn

SANDBOX_FIELDS = ("files", "setup", "sandbox")
# A ChatMessage's bookkeeping, which never reaches the model; its other fields do (an
# assistant's tool_calls, a tool message's tool_call_id and function).
MESSAGE_BOOKKEEPING = {"role", "content", "id", "source", "metadata"}


def read(text: str, batch: Batch) -> None:
    input_key = batch.options.input_field or "input"
    target_key = batch.options.ideal_field or "target"
    for number, (line, record) in enumerate(records(text, batch), start=1):
        batch.add(line, _case(number, line, record, input_key, target_key, batch))


def _case(
    number: int, line: int, record: dict[str, Any], input_key: str, target_key: str, batch: Batch
) -> dict[str, Any] | None:
    value = record.get(input_key)
    if isinstance(value, str) and value.strip():
        case_input = user_turn(value)
    elif isinstance(value, list) and value:
        case_input = {
            "messages": [_message(m, f"{input_key}[{i}]", line, batch) for i, m in enumerate(value)]
        }
    else:
        batch.error(line, "input", f"{input_key!r} must be text or chat messages, not {kind_of(value)}")
        return None
    ident = record.get("id")
    raw: dict[str, Any] = {"key": f"sample-{number}" if ident in (None, "") else str(ident)}
    extra = {
        k: v for k, v in record.items() if k not in (input_key, target_key, "id", "metadata", *SANDBOX_FIELDS)
    }
    choices = extra.get("choices")
    if isinstance(choices, str) and choices.strip().startswith("["):
        extra["choices"] = json.loads(choices)  # a CSV cell holding a JSON list
    if extra:
        case_input["vars"] = extra
    metadata = record.get("metadata")
    if isinstance(metadata, str) and metadata.strip():
        metadata = json.loads(metadata) if metadata.strip().startswith("{") else {"metadata": metadata}
    raw["tags"] = [f"{k}:{v if isinstance(v, str) else json.dumps(v)}" for k, v in (metadata or {}).items()]
    raw["input"] = case_input
    for field in SANDBOX_FIELDS:
        if record.get(field):
            batch.drop(line, field, "it prepares a sandbox, which Evalgate does not run")
    expected: dict[str, Any] = {}
    target = record.get(target_key)
    if target not in (None, "", []):
        carry_reference(batch, expected, target, line=line, construct=target_key)
    raw["expected"] = expected
    return raw


def _message(message: Any, where: str, line: int, batch: Batch) -> Any:
    """A chat message's role and content; what else it holds reaches the model in inspect_ai,
    so each such field, and each content part that is not text (an image, audio), is listed as
    not carried."""
    if not isinstance(message, dict):
        return message  # the case's own validation names it
    for field in sorted(set(message) - MESSAGE_BOOKKEEPING):
        batch.drop(line, f"{where}.{field}", "only a message's role and content are carried")
    content = message.get("content")
    if isinstance(content, list):
        for index, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text"):
                kind = part.get("type") if isinstance(part, dict) else kind_of(part)
                batch.drop(line, f"{where}.content[{index}]", f"its {kind} part is not carried (text only)")
        content = [part for part in content if isinstance(part, dict) and part.get("type") == "text"]
        content = [{"type": "text", "text": part.get("text")} for part in content]
    return {"role": message.get("role"), "content": content}
