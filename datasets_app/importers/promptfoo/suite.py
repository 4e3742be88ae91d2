"""A promptfoo config (or a bare list of tests) -> cases: its prompts rendered with each test's
vars (one case per prompt x test x var combination), defaultTest merged into every test, tests
read inline or from `file://` CSV, YAML, JSON and JSONL files, and every construct either
carried or recorded as dropped at its real line."""

import contextlib
import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from django.utils.text import slugify

from datasets_app.importers.base import MAX_KEY_LENGTH, Batch, kind_of
from datasets_app.importers.documents import Located, load_document
from datasets_app.importers.promptfoo import files
from datasets_app.importers.promptfoo.asserts import FAILED, Placed, Target, is_number, translate
from datasets_app.importers.promptfoo.csv_tests import csv_tests
from datasets_app.importers.promptfoo.render import (
    MESSAGES_TEMPLATE,
    MESSAGES_VAR,
    RenderError,
    as_messages,
    expand_vars,
    render,
)
from datasets_app.importers.promptfoo.weighted import needs_set, translate_weighted

METADATA_FIELDS = ("key", "failure_class", "tier", "risk", "pinned", "tags")
TEST_FIELDS = {
    "description",
    "vars",
    "assert",
    "options",
    "metadata",
    "threshold",
    "provider",
    "providers",
    "prompts",
    "providerOutput",
    "assertScoringFunction",
}
# Suite keys that say how promptfoo runs or reports, not what a test checks.
HARMLESS_SUITE_KEYS = {
    "description",
    "providers",
    "outputPath",
    "sharing",
    "env",
    "evaluateOptions",
    "commandLineOptions",
    "writeLatestResults",
    "tags",
    "metadata",
    "tracing",
    "$schema",
}
DROPPED_SUITE_KEYS = {
    "scenarios": "scenarios (tests built from combined configs) are not read",
    "derivedMetrics": "derived metrics are JavaScript or formulas over promptfoo's scores",
    "extensions": "extension hooks run code, and no foreign code is run",
    "nunjucksFilters": "custom Nunjucks filters are JavaScript",
    "redteam": "red-team generation is not an import",
}
HARMLESS_OPTIONS = {
    "runSerially",
    "disableConversationVar",
    "prefix",
    "suffix",
    "disableVarExpansion",
    "disableDefaultAsserts",
}


@dataclasses.dataclass(frozen=True)
class Prompt:
    label: str
    template: str


# A suite without prompts (a bare list of tests): the first of these vars is the user turn.
PROMPT_VARS = ("prompt", "question", "query", "input")
NO_PROMPT = Prompt("", "")


@dataclasses.dataclass
class Suite:
    """What the config says once: its prompts and its defaultTest."""

    prompts: list[Prompt]
    defaults: dict[str, Any]
    default_lines: dict[str, int]  # where defaultTest and each of its assertions are
    default_asserts: list[Placed]
    main_file: str
    tools: list[Any] = dataclasses.field(default_factory=list)  # the provider's tool definitions


def read(text: str, batch: Batch) -> None:
    document = load_document(text, batch)
    if document is None:
        return
    value = document.value
    main = batch.file
    if value is None:
        return  # an empty file: "the file has no cases"
    if isinstance(value, list):
        suite = Suite([NO_PROMPT], {}, {}, [], main)
        _read_tests(_inline_tests(document, value, ()), suite, batch)
        return
    if not isinstance(value, dict):
        batch.error(
            1,
            "file",
            f"a promptfoo file must be a list of tests or a mapping with `tests`, not {kind_of(value)}",
        )
        return
    if "tests" not in value:
        batch.error(1, "tests", "`tests` is missing: there is nothing to import")
        return
    for key in value:
        if key in DROPPED_SUITE_KEYS:
            batch.drop(document.line(key), key, DROPPED_SUITE_KEYS[key])
        elif key not in HARMLESS_SUITE_KEYS and key not in ("prompts", "tests", "defaultTest"):
            batch.error(document.line(key), key, f"unknown promptfoo config key {key!r}")
    suite = Suite(_prompts(document, batch), {}, {}, [], main, _provider_tools(value.get("providers")))
    _defaults(document, suite, batch)
    if batch.errors:
        return
    _read_tests(_all_tests(document, batch), suite, batch)


def _provider_tools(providers: Any) -> list[Any]:
    """The tools (or legacy functions) the config's first provider declares: what promptfoo's
    is-valid-openai-tools-call and is-valid-openai-function-call check calls against."""
    for provider in providers if isinstance(providers, list) else [providers]:
        config = provider.get("config") if isinstance(provider, dict) else None
        if isinstance(config, dict):
            tools = config.get("tools") or config.get("functions")
            if isinstance(tools, list) and tools:
                return tools
    return []


def _prompts(document: Located, batch: Batch) -> list[Prompt]:
    raw = document.value.get("prompts")
    if raw is None:
        # promptfoo takes prompts from its command line then: the prompt-like var is the input.
        return [NO_PROMPT]
    entries = raw if isinstance(raw, list) else [raw]
    prompts: list[Prompt] = []
    for index, entry in enumerate(entries):
        line = document.line("prompts", index) if isinstance(raw, list) else document.line("prompts")
        label = ""
        if isinstance(entry, dict):
            label = str(entry.get("label") or entry.get("id") or "")
            entry = entry.get("raw") or entry.get("id")
        if not isinstance(entry, str):
            batch.error(
                line,
                "prompts",
                f"a prompt must be text, a file:// path or {{raw, label}}, not {kind_of(entry)}",
            )
            continue
        if files.is_reference(entry):
            prompts.extend(_prompt_files(entry, label, line, batch))
        else:
            prompts.append(Prompt(label or entry, entry))
    if len(prompts) > 1:
        # Several prompts make several cases of one test, told apart by the prompt's label.
        prompts = [
            dataclasses.replace(p, label=p.label if p.label and len(p.label) <= 40 else f"p{i + 1}")
            for i, p in enumerate(prompts)
        ]
    return prompts


def _prompt_files(reference: str, label: str, line: int, batch: Batch) -> list[Prompt]:
    if files.is_code(reference):
        batch.drop(line, "prompts", f"{reference} is a prompt function, and no foreign code is run")
        return []
    prompts = []
    for path in files.resolve(reference, batch.options.base_dir, batch, line, "prompts"):
        text = files.read_text(path, batch, line, "prompts")
        if text is None:
            continue
        if path.suffix in (".json", ".yaml", ".yml"):
            value = files.load_value(path, batch, line, "prompts")
            # promptfoo serialises a JSON or YAML prompt file compactly, then renders it.
            compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            prompts.append(Prompt(label or path.stem, compact))
            continue
        # A text file may hold several prompts separated by a line of three dashes.
        parts = [part.strip("\n") for part in text.split("\n---\n")]
        for n, part in enumerate(parts, start=1):
            name = label or path.stem
            prompts.append(Prompt(name if len(parts) == 1 else f"{name}-{n}", part))
    return prompts


def _defaults(document: Located, suite: Suite, batch: Batch) -> None:
    raw = document.value.get("defaultTest")
    if raw is None:
        return
    line = document.line("defaultTest")
    if files.is_reference(raw):
        paths = files.resolve(raw, batch.options.base_dir, batch, line, "defaultTest")
        raw = files.load_value(paths[0], batch, line, "defaultTest") if paths else None
        if raw is None:
            return
        suite.default_lines = {"": line}
        asserts = raw.get("assert") if isinstance(raw, dict) else None
        # A referenced file: its own lines unknown, the reference's line stands for them.
        suite.default_asserts = [Placed(suite.main_file, line, a) for a in asserts or []]
    else:
        suite.default_lines = {"": line, "threshold": document.line("defaultTest", "threshold")}
        asserts = raw.get("assert") if isinstance(raw, dict) else None
        suite.default_asserts = [
            _placed(suite.main_file, document, ("defaultTest", "assert", i), a)
            for i, a in enumerate(asserts or [])
        ]
    if not isinstance(raw, dict):
        batch.error(line, "defaultTest", f"defaultTest must be a mapping, not {kind_of(raw)}")
        return
    if not isinstance(raw.get("assert") or [], list):
        batch.error(line, "defaultTest", "defaultTest.assert must be a list of assertions")
        return
    suite.defaults = raw


# A test as found: the file it is in ("" for the config), its line, the test, each of its
# assertions where it is written, and its threshold's line (CSV rows have one line for all).
Found = tuple[str, int, Any, list[Placed], int]


def _placed(name: str, document: Located, path: tuple, check: Any) -> Placed:
    """An assertion at ``path`` of ``document``, with the lines of an assert-set's members."""
    inner = check.get("assert") if isinstance(check, dict) else None
    count = len(inner) if isinstance(inner, list) else 0
    lines = tuple(document.line(*path, "assert", j) for j in range(count))
    return Placed(name, document.line(*path), check, lines)


def _found(name: str, document: Located, path: tuple, test: Any) -> Found:
    asserts = test.get("assert") if isinstance(test, dict) else None
    placed = [
        _placed(name, document, (*path, "assert", i), check)
        for i, check in enumerate(asserts if isinstance(asserts, list) else [])
    ]
    return (name, document.line(*path), test, placed, document.line(*path, "threshold"))


def _inline_tests(document: Located, tests: list[Any], path: tuple) -> list[Found]:
    return [_found("", document, (*path, i), test) for i, test in enumerate(tests)]


def _all_tests(document: Located, batch: Batch) -> list[Found]:
    """(file label, line, test) of every test: inline ones and those of referenced files."""
    raw = document.value["tests"]
    line = document.line("tests")
    if isinstance(raw, str):
        return _tests_from_reference(raw, line, batch)
    if isinstance(raw, dict) and "path" in raw:
        batch.drop(line, "tests", "a test generator runs code, and no foreign code is run")
        return []
    if not isinstance(raw, list):
        batch.error(line, "tests", f"`tests` must be a list or a file:// path, not {kind_of(raw)}")
        return []
    found: list[Found] = []
    for index, entry in enumerate(raw):
        entry_line = document.line("tests", index)
        if isinstance(entry, str):
            found.extend(_tests_from_reference(entry, entry_line, batch))
        elif isinstance(entry, dict) and "path" in entry and "vars" not in entry and "assert" not in entry:
            batch.drop(entry_line, "tests", "a test generator runs code, and no foreign code is run")
        else:
            found.append(_found("", document, ("tests", index), entry))
    return found


def _tests_from_reference(reference: str, line: int, batch: Batch) -> list[Found]:
    if not files.is_reference(reference):
        batch.drop(
            line, "tests", f"{reference!r} is not a file:// path (remote test sources are not fetched)"
        )
        return []
    if files.is_code(reference):
        batch.drop(line, "tests", f"{reference} generates tests with code, and no foreign code is run")
        return []
    found: list[Found] = []
    base_dir = batch.options.base_dir
    for path in files.resolve(reference, base_dir, batch, line, "tests"):
        name = files.label(path, base_dir)
        text = files.read_text(path, batch, line, "tests")
        if text is None:
            continue
        with batch.in_file(name):
            found.extend(_tests_in_file(name, path, text, batch))
    return found


def _tests_in_file(name: str, path: Path, text: str, batch: Batch) -> list[Found]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = csv_tests(text, batch)
        return [(name, line, test, _at_line(name, line, test), line) for line, test in rows]
    if suffix == ".jsonl":
        from datasets_app.importers.jsonl import json_lines

        rows = json_lines(text, batch)
        return [(name, line, test, _at_line(name, line, test), line) for line, test in rows]
    if suffix in (".yaml", ".yml", ".json"):
        document = load_document(text, batch)
        if document is None:
            return []
        value = document.value
        if isinstance(value, dict) and isinstance(value.get("tests"), list):
            return [_found(name, document, ("tests", i), t) for i, t in enumerate(value["tests"])]
        if isinstance(value, dict):
            return [_found(name, document, (), value)]  # a file holding one test
        if isinstance(value, list):
            return [_found(name, document, (i,), t) for i, t in enumerate(value)]
        batch.error(1, "tests", f"a tests file holds a list of tests, not {kind_of(value)}")
        return []
    batch.error(1, "tests", f"{path.name}: tests files are .csv, .yaml, .yml, .json or .jsonl")
    return []


def _at_line(name: str, line: int, test: Any) -> list[Placed]:
    """The assertions of a test written on one line (a CSV row, a JSONL line)."""
    asserts = test.get("assert") if isinstance(test, dict) else None
    return [Placed(name, line, check) for check in (asserts if isinstance(asserts, list) else [])]


def _read_tests(tests: list[Found], suite: Suite, batch: Batch) -> None:
    for number, (name, line, test, asserts, threshold_line) in enumerate(tests, start=1):
        with batch.in_file(name):
            _read_test(number, (line, threshold_line), test, asserts, suite, batch)


def _read_test(
    number: int, lines: tuple[int, int], test: Any, own_asserts: list[Placed], suite: Suite, batch: Batch
) -> None:
    line, threshold_line = lines
    if not isinstance(test, dict):
        batch.error(line, "test", f"a test must be a mapping, not {kind_of(test)}")
        return
    unknown = sorted(set(test) - TEST_FIELDS)
    if unknown:
        batch.error(line, "test", f"unknown test field(s): {', '.join(unknown)}")
        return
    defaults = suite.defaults
    merged: dict[str, dict[str, Any]] = {}
    for name in ("vars", "metadata", "options"):
        default, own = defaults.get(name) or {}, test.get(name) or {}
        if not isinstance(default, dict) or not isinstance(own, dict):
            batch.error(line, name, f"{name} must be a mapping")
            return
        merged[name] = {**default, **own}  # like promptfoo: the test's own values win
    if not isinstance(test.get("assert") or [], list):
        batch.error(line, "assert", "assert must be a list of assertions")
        return
    _drop_test_fields(test, defaults, line, suite, batch)
    threshold = _threshold(test, defaults, line, suite, batch)
    if threshold is FAILED:
        return
    options = merged["options"]
    variables = _load_vars(merged["vars"], line, batch)
    if variables is None:
        return
    combos = [variables] if options.get("disableVarExpansion") else expand_vars(variables)
    prompts = _prompts_for(test, suite, line, batch)
    base_key, metadata = _key_and_metadata(number, test, merged["metadata"])
    # promptfoo runs defaultTest's assertions first, then the test's own.
    asserts = ([] if options.get("disableDefaultAsserts") else suite.default_asserts) + own_asserts
    for j, combo in enumerate(combos, start=1):
        case_vars = {k: v for k, v in combo.items() if k != MESSAGES_VAR}
        target = Target(expected={}, tags=[], tools=suite.tools)
        rendered = _rendered(asserts, combo)
        if needs_set(rendered, threshold):
            # Where its threshold is written: the test's, else defaultTest's (in the config).
            where = (
                (batch.file, threshold_line)
                if test.get("threshold") is not None
                else (suite.main_file, _default_line(suite, "threshold"))
            )
            translate_weighted(batch, rendered, target, _loader(batch), threshold, where)
        else:
            translate(batch, rendered, target, _loader(batch))
        for prompt in prompts:
            key = (
                base_key
                + (f"-{j}" if len(combos) > 1 else "")
                + (f"@{prompt.label}" if len(prompts) > 1 else "")
            )
            case_input: dict[str, Any] = {}
            if prompt is NO_PROMPT:
                text = next((combo[n] for n in PROMPT_VARS if isinstance(combo.get(n), str)), None)
                if text is not None:
                    case_input["messages"] = [{"role": "user", "content": text}]
            else:
                messages = _messages(prompt, combo, options, line, batch)
                if messages is None:
                    continue
                case_input["messages"] = messages
            if case_vars:
                case_input["vars"] = case_vars
            if prompt.template not in (MESSAGES_TEMPLATE, ""):
                # The template as sent: with the test's prefix and suffix, so an export says the same.
                case_input["prompt_template"] = (
                    f"{options.get('prefix') or ''}{prompt.template}{options.get('suffix') or ''}"
                )
            raw = {**metadata, "key": key, "input": case_input, "expected": copy.deepcopy(target.expected)}
            tags = metadata.get("tags", [])
            raw["tags"] = (
                [*tags, *(t for t in target.tags if t not in tags)] if isinstance(tags, list) else tags
            )
            batch.add(line, raw)


def _drop_test_fields(
    test: dict[str, Any], defaults: dict[str, Any], line: int, suite: Suite, batch: Batch
) -> None:
    reasons = {
        "provider": "a per-test provider: the run's target decides who answers",
        "providers": "a per-test provider list: the run's target decides who answers",
        "providerOutput": "a fixed output is not a case (submit outputs to a run instead)",
        "assertScoringFunction": "a scoring function is code, and no foreign code is run",
    }
    for field, reason in reasons.items():
        if field in test:
            batch.drop(line, field, reason)
        elif field in defaults:
            with batch.in_file(suite.main_file):
                batch.drop(suite.default_lines.get("", 1), f"defaultTest.{field}", reason)
    for source, where in (
        (defaults.get("options") or {}, "defaultTest.options"),
        (test.get("options") or {}, "options"),
    ):
        for option in source:
            if option in HARMLESS_OPTIONS:
                continue
            reason = (
                (
                    "it rewrites the output with JavaScript or Python before the assertions, and no "
                    "foreign code is run"
                )
                if option in ("transform", "postprocess")
                else "not carried"
            )
            if where == "options":
                batch.drop(line, f"options.{option}", reason)
            else:
                with batch.in_file(suite.main_file):
                    batch.drop(suite.default_lines.get("", 1), f"{where}.{option}", reason)


def _load_vars(variables: dict[str, Any], line: int, batch: Batch) -> dict[str, Any] | None:
    loaded = {}
    for name, value in variables.items():
        if files.is_reference(value):
            if files.is_code(value):
                batch.drop(
                    line, f"vars.{name}", f"{value} computes the var with code, and no foreign code is run"
                )
                continue
            paths = files.resolve(value, batch.options.base_dir, batch, line, f"vars.{name}")
            if not paths:
                return None
            value = files.load_value(paths[0], batch, line, f"vars.{name}")
            if value is None:
                return None
        loaded[name] = value
    return loaded


def _prompts_for(test: dict[str, Any], suite: Suite, line: int, batch: Batch) -> list[Prompt]:
    wanted = test.get("prompts")
    if wanted is None:
        return suite.prompts
    chosen = [p for p in suite.prompts if p.label in wanted or p.template in wanted]
    if not chosen:
        batch.error(line, "prompts", f"none of the prompts {wanted!r} is in the config")
    return chosen


def _key_and_metadata(
    number: int, test: dict[str, Any], metadata: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The case key (metadata.key, else the description's slug, else test-N) and the case fields
    metadata names; any other metadata becomes `name:value` tags, so nothing of it is lost."""
    fields = {name: metadata[name] for name in METADATA_FIELDS if name in metadata}
    tags = list(fields.get("tags") or []) if isinstance(fields.get("tags", []), list) else fields["tags"]
    if isinstance(tags, list):
        for name, value in metadata.items():
            if name in METADATA_FIELDS:
                continue
            for item in value if isinstance(value, list) else [value]:
                tags.append(f"{name}:{item if isinstance(item, str) else json.dumps(item)}")
        fields["tags"] = tags
    key = fields.pop("key", None)
    if key is None:
        description = test.get("description")
        slug = slugify(description)[:MAX_KEY_LENGTH].strip("-") if isinstance(description, str) else ""
        key = slug or f"test-{number}"
    return key, fields


def _default_line(suite: Suite, field: str) -> int:
    """Where defaultTest's ``field`` is written (a referenced defaultTest file: the reference)."""
    return suite.default_lines.get(field, suite.default_lines.get("", 1))


def _threshold(test: dict[str, Any], defaults: dict[str, Any], line: int, suite: Suite, batch: Batch) -> Any:
    """The test's threshold (else defaultTest's, as promptfoo merges them), None without one."""
    own = test.get("threshold")
    threshold, where = (own, None) if own is not None else (defaults.get("threshold"), suite.main_file)
    if threshold is None or (is_number(threshold) and math.isfinite(threshold)):
        return threshold
    # promptfoo ignores a threshold that is not a number (the test then needs every assertion
    # to pass), which is never what its author meant: refused, so nobody is surprised.
    message = f"threshold must be a number, not {kind_of(threshold)} (promptfoo would ignore it)"
    if where is None:
        batch.error(line, "threshold", message)
    else:
        with batch.in_file(where):
            batch.error(_default_line(suite, "threshold"), "defaultTest.threshold", message)
    return FAILED


def _render_value(value: Any, variables: dict[str, Any]) -> Any:
    """An assertion's value as promptfoo renders it with the test's vars ("{{answer}}"): a text,
    or each text of a list; a value that does not render is left as written (its check reports
    what it cannot read)."""
    if isinstance(value, list):
        return [_render_value(item, variables) if isinstance(item, str) else item for item in value]
    if isinstance(value, str) and "{" in value and not value.startswith("file://"):
        with contextlib.suppress(RenderError):
            return render(value, variables)
    return value


def _rendered(asserts: list[Placed], variables: dict[str, Any]) -> list[Placed]:
    """Each assertion with its value rendered, an assert-set's own assertions too."""
    out = []
    for placed in asserts:
        check = placed.check
        if isinstance(check, dict) and "value" in check:
            check = {**check, "value": _render_value(check["value"], variables)}
        if isinstance(check, dict) and isinstance(check.get("assert"), list):
            members = _rendered(placed.members(), variables)
            check = {**check, "assert": [m.check for m in members]}
        out.append(dataclasses.replace(placed, check=check))
    return out


def _loader(batch: Batch):
    def load(value: Any, line: int) -> Any:
        if not files.is_reference(value) or files.is_code(value):
            return value
        paths = files.resolve(value, batch.options.base_dir, batch, line, "assert")
        if not paths:
            return FAILED
        loaded = files.load_value(paths[0], batch, line, "assert")
        return FAILED if loaded is None else loaded

    return load


def _messages(
    prompt: Prompt, variables: dict[str, Any], options: dict[str, Any], line: int, batch: Batch
) -> list[dict[str, Any]] | None:
    # promptfoo puts the test's prefix and suffix around the template itself, before rendering.
    template = f"{options.get('prefix') or ''}{prompt.template}{options.get('suffix') or ''}"
    try:
        text = render(template, variables)
    except RenderError as exc:
        label = prompt.label or prompt.template[:40]
        batch.error(line, "prompts", f"the prompt {label!r} does not render: {exc}")
        return None
    return as_messages(text)
