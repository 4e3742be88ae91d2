"""LangSmith and Langfuse dataset exports: records of `inputs`/`outputs`/`metadata` (LangSmith,
JSONL or CSV with JSON cells) or `input`/`expectedOutput`/`metadata` (Langfuse).

- inputs -> the input's vars; the user turn is the inputs key --input-field names, else the
  only text value, else the first of question/input/query/prompt;
- outputs -> the reference answer: the key --ideal-field names, else the only value; its
  check is --reference-as (the dataset does not hold the evaluator, which is code);
- metadata -> tags `name:value`; `id` -> the case key.
"""

import json
from typing import Any

from datasets_app.importers.base import Batch, kind_of
from datasets_app.importers.checks import carry_reference
from datasets_app.importers.records import records

PROMPT_KEYS = ("question", "input", "query", "prompt")


def read(text: str, batch: Batch) -> None:
    for number, (line, record) in enumerate(records(text, batch), start=1):
        batch.add(line, _case(number, line, record, batch))


def _object(value: Any, line: int, field: str, batch: Batch) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError as exc:
            batch.error(line, field, f"invalid JSON in the {field} cell: {exc}")
    return value


def _case(number: int, line: int, record: dict[str, Any], batch: Batch) -> dict[str, Any] | None:
    inputs = _object(record.get("inputs", record.get("input")), line, "inputs", batch)
    outputs = _object(
        record.get("outputs", record.get("expectedOutput", record.get("expected_output"))),
        line,
        "outputs",
        batch,
    )
    metadata = _object(record.get("metadata"), line, "metadata", batch) or {}
    field = batch.options.input_field
    if isinstance(inputs, str):
        # Text input (Langfuse allows it) is the user turn itself, whatever --input-field says.
        inputs, field = {"input": inputs}, "input"
    if not isinstance(inputs, dict) or not inputs:
        batch.error(line, "inputs", f"inputs must be an object (or text), not {kind_of(inputs)}")
        return None
    texts = [k for k, v in inputs.items() if isinstance(v, str)]
    chosen = (
        field
        if field is not None
        else (
            texts[0]
            if len(texts) == 1
            else next((k for k in PROMPT_KEYS if isinstance(inputs.get(k), str)), None)
        )
    )
    case_input: dict[str, Any] = {"vars": inputs}
    if chosen is not None:
        prompt = inputs.get(chosen)
        if isinstance(prompt, list):
            case_input = {"messages": prompt, "vars": {k: v for k, v in inputs.items() if k != chosen}}
        elif isinstance(prompt, str):
            case_input["messages"] = [{"role": "user", "content": prompt}]
        else:
            batch.error(line, "inputs", f"inputs.{chosen} is missing")
            return None
    if not case_input["vars"]:
        del case_input["vars"]
    raw: dict[str, Any] = {"key": str(record.get("id") or f"example-{number}"), "input": case_input}
    raw["tags"] = (
        [f"{k}:{v if isinstance(v, str) else json.dumps(v)}" for k, v in metadata.items()]
        if isinstance(metadata, dict)
        else []
    )
    expected: dict[str, Any] = {}
    if outputs not in (None, {}, ""):
        reference = outputs
        if isinstance(outputs, dict):
            key = batch.options.ideal_field or (next(iter(outputs)) if len(outputs) == 1 else None)
            if key is None or key not in outputs:
                batch.error(
                    line, "outputs", "outputs has several keys: name the reference with --ideal-field"
                )
                return None
            reference = outputs[key]
        carry_reference(batch, expected, reference, line=line, construct="outputs")
    raw["expected"] = expected
    return raw
