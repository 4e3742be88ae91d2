"""promptfoo's CSV test files: every column is a var except the `__` ones, which promptfoo reads
as `__expected[N]` (an assertion written as a string), `__description`, `__metric`,
`__threshold`, `__prefix`/`__suffix`, `__metadata:NAME` (and `NAME[]`, a comma list) and
`__config:__expected[N]:threshold`. The same here, row by row, with the row's real line."""

import re
from collections.abc import Iterator
from typing import Any

from datasets_app.importers.base import Batch
from datasets_app.importers.csv_cases import csv_records

# promptfoo's assertion types (0.121), for reading "type:value" strings as it does.
ASSERTION_TYPES = [
    "agent-rubric",
    "answer-relevance",
    "bleu",
    "classifier",
    "contains",
    "contains-all",
    "contains-any",
    "contains-html",
    "contains-json",
    "contains-sql",
    "contains-xml",
    "context-faithfulness",
    "context-recall",
    "context-relevance",
    "conversation-relevance",
    "cost",
    "equals",
    "factuality",
    "finish-reason",
    "g-eval",
    "gleu",
    "guardrails",
    "icontains",
    "icontains-all",
    "icontains-any",
    "is-html",
    "is-json",
    "is-refusal",
    "is-sql",
    "is-valid-function-call",
    "is-valid-openai-function-call",
    "is-valid-openai-tools-call",
    "is-xml",
    "javascript",
    "latency",
    "levenshtein",
    "llm-rubric",
    "pi",
    "meteor",
    "model-graded-closedqa",
    "model-graded-factuality",
    "moderation",
    "perplexity",
    "perplexity-score",
    "python",
    "regex",
    "rouge-n",
    "ruby",
    "similar",
    "similar:cosine",
    "similar:dot",
    "similar:euclidean",
    "starts-with",
    "tool-call-f1",
    "skill-used",
    "trajectory:goal-success",
    "trajectory:tool-args-match",
    "trajectory:step-count",
    "trajectory:tool-sequence",
    "trajectory:tool-used",
    "trace-error-spans",
    "trace-span-count",
    "trace-span-duration",
    "search-rubric",
    "webhook",
    "word-count",
]
_ASSERTION = re.compile(
    r"^(not-)?("
    + "|".join(re.escape(t) for t in ASSERTION_TYPES)
    + r")(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
)
_THRESHOLD_DEFAULTS = {"similar": 0.8}
_THRESHOLD_TYPES = {
    "answer-relevance",
    "classifier",
    "context-faithfulness",
    "context-recall",
    "context-relevance",
    "cost",
    "latency",
    "levenshtein",
    "perplexity-score",
    "perplexity",
    "rouge-n",
    "similar",
    "starts-with",
}
_SPECIAL = (
    "__expected",
    "__prefix",
    "__suffix",
    "__description",
    "__providerOutput",
    "__metric",
    "__threshold",
    "__metadata",
    "__config",
)


def assertion_from_string(text: str) -> dict[str, Any]:
    """An `__expected` cell as promptfoo reads it: `type:value`, `type(threshold):value`,
    `grade:`/`llm-rubric:`, `javascript:`/`fn:`/`eval:`, `python:`, else an equals check."""
    for prefix in ("javascript:", "fn:", "eval:"):
        if text.startswith(prefix):
            return {"type": "javascript", "value": text[len(prefix) :].strip()}
    for prefix in ("grade:", "llm-rubric:"):
        if text.startswith(prefix):
            return {"type": "llm-rubric", "value": text[len(prefix) :]}
    if text.startswith("python:"):
        return {"type": "python", "value": text[len("python:") :].strip()}
    if text.startswith("file://") and (".py" in text or text.endswith((".js", ".ts", ".mjs", ".cjs"))):
        return {"type": "python" if ".py" in text else "javascript", "value": text}
    match = _ASSERTION.match(text)
    if match is None:
        return {"type": "equals", "value": text}
    negated, kind, threshold, value = match.groups()
    full = f"not-{kind}" if negated else kind
    if kind in ("contains-all", "contains-any", "icontains-all", "icontains-any"):
        return {"type": full, "value": value}  # split as promptfoo splits it when carried
    if kind in ("contains-json", "is-json"):
        return {"type": full, "value": value}
    result: dict[str, Any] = {"type": full, "value": value.strip() if value is not None else None}
    if kind in _THRESHOLD_TYPES:
        result["threshold"] = float(threshold) if threshold else _THRESHOLD_DEFAULTS.get(kind, 0.75)
    return result


# JavaScript's \s and trim(): WhiteSpace and LineTerminator (U+FEFF is one; U+001C..U+001F and
# U+0085, which Python's str.isspace() takes, are not).
JS_WHITESPACE = "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
JS_WHITESPACE += "\u2028\u2029\u202f\u205f\u3000\ufeff"


def comma_values(value: str) -> list[str]:
    """promptfoo's parseCommaSeparatedValues (a contains-any/-all value written as one string,
    in a config or a CSV cell): fields split on commas and trimmed, except a field in double
    quotes, which keeps its commas and spaces, with \\" or "" for a quote and \\\\ for a
    backslash. ValueError, with promptfoo's reason, where it refuses the value."""
    fields, i = [], 0
    while i < len(value):
        while i < len(value) and (value[i] in JS_WHITESPACE or value[i] == ","):
            i += 1
        if i >= len(value):
            break
        if value[i] != '"':
            end = value.find(",", i)
            end = len(value) if end == -1 else end
            fields.append(value[i:end].strip(JS_WHITESPACE))
            i = end
            continue
        i, text, closed = i + 1, [], False
        while i < len(value):
            if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in '"\\':
                text.append(value[i + 1])
                i += 2
            elif value[i] == '"' and i + 1 < len(value) and value[i + 1] == '"':
                text.append('"')
                i += 2
            elif value[i] == '"':
                i, closed = i + 1, True
                break
            else:
                text.append(value[i])
                i += 1
        if not closed:
            raise ValueError("unterminated quoted field")
        fields.append("".join(text))
        while i < len(value) and value[i] in JS_WHITESPACE:
            i += 1
        if i < len(value) and value[i] != ",":
            raise ValueError("expected a comma after a quoted field")
    return fields


# promptfoo's parseFiniteNumber: a whole decimal literal, else the cell counts as empty ("1_0",
# "0x10", "inf" and "nan" are not numbers there, though Python's float() reads some of them).
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def finite_number(cell: str) -> float | None:
    text = cell.strip()
    if not _DECIMAL.fullmatch(text):
        return None
    number = float(text)
    if abs(number) == float("inf"):
        return None
    return int(number) if number.is_integer() else number  # JavaScript has one number type


def csv_tests(text: str, batch: Batch) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, test) of each row of a promptfoo CSV tests file."""
    for line, header, cells in csv_records(text, batch):
        if not cells:
            continue
        test = _row(line, header, cells, batch)
        if test is not None:
            yield line, test


def _row(line: int, header: list[str], cells: dict[str, str], batch: Batch) -> dict[str, Any] | None:
    variables: dict[str, Any] = {}
    asserts: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    options: dict[str, str] = {}
    configs: dict[int, float] = {}
    test: dict[str, Any] = {}
    for name in header:
        value = cells[name]
        if name.startswith("__expected"):
            if value.strip():
                asserts.append(assertion_from_string(value.strip()))
        elif name in ("__prefix", "__suffix"):
            options[name[2:]] = value
        elif name == "__description":
            test["description"] = value
        elif name == "__metric":
            test["__metric"] = value
        elif name == "__threshold":
            number = finite_number(value)
            if number is not None:
                test["threshold"] = number
        elif name.startswith("__metadata:"):
            key = name[len("__metadata:") :]
            if key.endswith("[]") and value.strip():
                parts = re.split(r"(?<!\\),", value)
                metadata[key[:-2]] = [part.strip().replace("\\,", ",") for part in parts]
            elif value.strip():
                metadata[key] = value
        elif name.startswith("__config:"):
            match = re.fullmatch(r"__config:__expected(\d*):threshold", name)
            number = finite_number(value)
            if match is None or number is None:
                batch.error(line, name, "use __config:__expected[N]:threshold with a number")
                return None
            configs[int(match.group(1)) - 1 if match.group(1) else 0] = number
        elif name == "__providerOutput":
            test["providerOutput"] = value
        elif name.startswith("__") and any(name.startswith(s) for s in _SPECIAL):
            batch.error(line, name, f"unknown promptfoo column {name!r}")
            return None
        else:
            variables[name] = value
    for position, check in enumerate(asserts):
        if test.get("__metric"):
            check["metric"] = test["__metric"]
        # promptfoo applies __config:__expectedN to the Nth assertion of the row (in order), and
        # notes it in the test's metadata too.
        if position in configs:
            check["threshold"] = metadata["threshold"] = configs[position]
    test.pop("__metric", None)
    test["vars"] = variables
    test["assert"] = asserts
    if options:
        test["options"] = options
    if metadata:
        test["metadata"] = metadata
    return test
