"""DeepEval goldens (a JSON array, JSONL or CSV, as EvaluationDataset saves them): `input`,
`expected_output`, `context`, `retrieval_context`, `tools_called`, `expected_tools`,
`additional_metadata`, `comments`, `name`; and conversational goldens with `turns`,
`scenario`, `expected_outcome` and `user_description`.

- input -> the user turn (turns -> the messages of the conversation so far, answered once);
- with --persona, a conversational golden (turns and/or scenario) is played out instead: its
  turns open the conversation, its scenario and user_description become the simulated user's
  scenario (datasets_app.conversations), as DeepEval's ConversationSimulator plays it;
- expected_output -> the check --reference-as names (DeepEval's metrics are Python);
- expected_tools -> expected.tools (the tool_calls grader: each named tool was called);
- context -> the input's vars (what the answer should rest on); retrieval_context and
  tools_called describe one past run's output, so they are not part of a case (dropped);
- expected_outcome -> expected.reference, dropped unless --reference-as says its check.
"""

import json
from typing import Any

from datasets_app.importers.base import Batch, kind_of
from datasets_app.importers.checks import carry_reference
from datasets_app.importers.records import records, user_turn

RUN_FIELDS = ("actual_output", "retrieval_context", "tools_called")
KNOWN = {
    "input",
    "expected_output",
    "context",
    "expected_tools",
    "additional_metadata",
    "comments",
    "name",
    "source_file",
    "turns",
    "scenario",
    "expected_outcome",
    "user_description",
    *RUN_FIELDS,
}


def read(text: str, batch: Batch) -> None:
    for number, (line, record) in enumerate(records(text, batch), start=1):
        batch.add(line, _case(number, line, record, batch))


def _json_cell(value: Any) -> Any:
    """CSV goldens hold lists and objects as JSON text."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _turns(line: int, turns: list[Any], batch: Batch) -> list[dict[str, Any]] | None:
    """A golden's turns as chat messages; what a turn records of a past run is not carried."""
    messages = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            batch.error(
                line, f"turns[{index}]", f"a turn is an object with role and content, not {kind_of(turn)}"
            )
            return None
        for field in sorted(set(turn) - {"role", "content"}):
            batch.drop(line, f"turns[{index}].{field}", "only a turn's role and content are carried")
        messages.append({"role": turn.get("role"), "content": turn.get("content")})
    return messages


def _simulated(line: int, record: dict[str, Any], batch: Batch) -> dict[str, Any] | None:
    """A conversational golden played out: the persona simulates its user from the scenario, as
    DeepEval's ConversationSimulator does, continuing from its turns (the conversation so far).
    A last user turn is the one the chatbot answers next: the simulated user's opening."""
    messages = _turns(line, record.get("turns") or [], batch)
    if messages is None:
        return None
    simulated: dict[str, Any] = {"rubric": batch.options.persona}
    about = []
    if record.get("scenario"):
        about.append(str(record["scenario"]))
    if record.get("user_description"):
        about.append(f"Who you are: {record['user_description']}")
    if about:
        simulated["scenario"] = "\n".join(about)
    if messages and messages[-1]["role"] == "user":
        simulated["opening"] = messages.pop()["content"]
    return {**({"messages": messages} if messages else {}), "simulated_user": simulated}


def _case(number: int, line: int, record: dict[str, Any], batch: Batch) -> dict[str, Any] | None:
    record = {k: _json_cell(v) for k, v in record.items() if v not in (None, "")}
    unknown = sorted(set(record) - KNOWN - {batch.options.input_field, batch.options.ideal_field})
    if unknown:
        batch.error(line, "fields", f"unknown golden field(s): {', '.join(unknown)}")
        return None
    input_key = batch.options.input_field or "input"
    raw: dict[str, Any] = {"key": str(record.get("name") or f"golden-{number}")}
    variables: dict[str, Any] = {}
    conversational = isinstance(record.get("turns"), list) or "scenario" in record
    if conversational and batch.options.persona:
        raw["input"] = _simulated(line, record, batch)
    elif isinstance(record.get("turns"), list):
        if not record["turns"]:
            batch.error(line, "turns", "a conversational golden needs at least one turn (or --persona)")
            return None
        messages = _turns(line, record["turns"], batch)
        if messages is None:
            return None
        raw["input"] = {"messages": messages}
        for field in ("scenario", "user_description"):
            if field in record:
                variables[field] = record[field]
    elif isinstance(record.get(input_key), str):
        raw["input"] = user_turn(record[input_key])
    else:
        batch.error(
            line,
            input_key,
            f"{input_key!r} must be text (or give turns, or a scenario with --persona to simulate its user), "
            f"not {kind_of(record.get(input_key))}",
        )
        return None
    if raw["input"] is None:
        return None
    if "context" in record:
        variables["context"] = record["context"]
    if variables:
        raw["input"]["vars"] = variables
    metadata = record.get("additional_metadata") or {}
    raw["tags"] = (
        [f"{k}:{v if isinstance(v, str) else json.dumps(v)}" for k, v in metadata.items()]
        if isinstance(metadata, dict)
        else []
    )
    if record.get("comments"):
        raw["tags"].append(f"comments:{record['comments']}")
    for field in RUN_FIELDS:
        if field in record:
            batch.drop(line, field, "it records one past run's output, not what a case expects")
    expected: dict[str, Any] = {}
    ideal_key = batch.options.ideal_field or "expected_output"
    for key in (ideal_key, "expected_outcome"):
        if key in record:
            carry_reference(batch, expected, record[key], line=line, construct=key)
    tools = record.get("expected_tools")
    if tools:
        names = [t.get("name") if isinstance(t, dict) else t for t in tools]
        if not all(isinstance(n, str) for n in names):
            batch.error(line, "expected_tools", "each expected tool needs a name")
            return None
        expected["tools"] = names
        if any(isinstance(t, dict) and (t.get("input_parameters") or t.get("output")) for t in tools):
            batch.drop(line, "expected_tools", "tool arguments and outputs are not checked yet (names are)")
    raw["expected"] = expected
    return raw
