"""The OpenAI Evals API's exported eval (`data_source_config` + `testing_criteria`) with its
items (JSONL of `{"item": {...}}`, given with --items). Each testing criterion becomes a check:

- string_check on `{{sample.output_text}}` -> the string_check grader (eq, ne, like, ilike);
- text_similarity -> the text_similarity grader (fuzzy_match, bleu, gleu, meteor, rouge_1..5,
  rouge_l, with the pass threshold); its `cosine` metric compares embeddings: embedding
  similarity on the endpoint the importer names (--embedding-endpoint, --embedding-model);
- label_model and score_model -> judge graders on draft rubrics (their owner signs them off);
- python and other types -> not carried (no foreign code is run).

A case's input is the item field --input-field names, or the eval's `input_messages` template
(a run's data source, when the file holds one) rendered with the item.
"""

import json
import re
from typing import Any

from django.utils.text import slugify

from datasets_app.importers.base import Batch, GraderSpec, RubricSpec, kind_of
from datasets_app.importers.checks import carry
from datasets_app.importers.documents import Located, load_document
from datasets_app.importers.jsonl import json_lines

TEMPLATE = re.compile(r"\{\{\s*(item|sample)\.([A-Za-z0-9_.]+)\s*\}\}")
OUTPUT_TEXT = re.compile(r"^\{\{\s*sample\.output_text\s*\}\}$")
STRING_CHECKS = ("eq", "ne", "like", "ilike")
TEXT_METRICS = (
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
    "cosine",  # embeddings: the embedding_similarity grader
)


def read(text: str, batch: Batch) -> None:
    document = load_document(text, batch)
    if document is None:
        return
    definition = document.value
    if isinstance(definition, dict) and isinstance(definition.get("eval"), dict):
        definition = definition["eval"]
    if not isinstance(definition, dict) or not isinstance(definition.get("testing_criteria"), list):
        batch.error(1, "testing_criteria", "an eval definition is an object with testing_criteria")
        return
    criteria = _criteria(document, definition["testing_criteria"], batch)
    template = _input_template(definition)
    if template is None and batch.options.input_field is None:
        batch.error(
            1,
            "input_field",
            "the definition has no input_messages template: name the item field "
            "that holds the input with --input-field",
        )
        return
    items = batch.options.items
    if items is None:
        batch.error(1, "items", 'give the eval\'s items file (JSONL of {"item": ...}) with --items')
        return
    try:
        item_text = items.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        batch.error(1, "items", f"cannot read {items}: {exc}")
        return
    if batch.errors:
        return
    with batch.in_file(items.name):
        for line, row in json_lines(item_text, batch):
            batch.add(line, _case(line, row, criteria, template, batch))


def _input_template(definition: dict[str, Any]) -> list[dict[str, Any]] | None:
    source = definition.get("data_source") or {}
    messages = (source.get("input_messages") or {}) if isinstance(source, dict) else {}
    template = messages.get("template") if isinstance(messages, dict) else None
    return template if isinstance(template, list) else None


def _fill(text: str, item: dict[str, Any], line: int, batch: Batch) -> str:
    def value(match: re.Match) -> str:
        if match.group(1) == "sample":
            return match.group(0)
        found: Any = item
        for part in match.group(2).split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found is None:
            batch.error(line, "item", f"item.{match.group(2)} is missing")
            return ""
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return TEMPLATE.sub(value, text)


def _criteria(document: Located, criteria: list[Any], batch: Batch) -> list[tuple[int, dict[str, Any]]]:
    """The criteria that can be carried, each with its line; the others are recorded as dropped."""
    kept = []
    for index, criterion in enumerate(criteria):
        line = (
            document.line("eval", "testing_criteria", index)
            if "eval" in document.value
            else document.line("testing_criteria", index)
        )
        if not isinstance(criterion, dict):
            batch.error(line, "testing_criteria", f"a criterion is an object, not {kind_of(criterion)}")
            continue
        kind = criterion.get("type")
        construct = f"testing_criteria {criterion.get('name') or kind}"
        if kind == "string_check":
            if criterion.get("operation") not in STRING_CHECKS:
                batch.drop(line, construct, f"operation {criterion.get('operation')!r} has no grader yet")
            elif not OUTPUT_TEXT.match(str(criterion.get("input", ""))):
                batch.drop(line, construct, "it checks something other than sample.output_text")
            else:
                kept.append((line, criterion))
        elif kind in ("label_model", "score_model"):
            kept.append((line, criterion))
            _judge(criterion, batch)
        elif kind == "python":
            batch.drop(line, construct, "a python grader is code, and no foreign code is run")
        elif kind == "text_similarity":
            if criterion.get("evaluation_metric") not in TEXT_METRICS:
                batch.drop(
                    line, construct, f"the {criterion.get('evaluation_metric')!r} metric has no grader"
                )
            elif not OUTPUT_TEXT.match(str(criterion.get("input", ""))):
                batch.drop(line, construct, "it checks something other than sample.output_text")
            else:
                kept.append((line, criterion))
        else:
            batch.drop(line, construct, f"Evalgate has no grader for {kind!r} criteria")
    return kept


def _judge_key(criterion: dict[str, Any]) -> str:
    return "openai_" + slugify(str(criterion.get("name") or criterion["type"])).replace("-", "_")


def _judge(criterion: dict[str, Any], batch: Batch) -> None:
    key = _judge_key(criterion)
    slug = f"openai-evals-{key[len('openai_') :].replace('_', '-')}"[:64]
    prompt = json.dumps(criterion.get("input"), ensure_ascii=False, indent=2)
    how = (
        f"Label the answer with one of {criterion.get('labels')}; it passes when the label is one of "
        f"{criterion.get('passing_labels')} (score 1, else 0)."
        if criterion["type"] == "label_model"
        else f"Score the answer in the range {criterion.get('range', [0, 1])}, reported scaled to 0..1; "
        f"it passes at {criterion.get('pass_threshold')} or above on that range."
    )
    low, high = (criterion.get("range") or [0, 1])[:2] if criterion["type"] == "score_model" else (0, 1)
    raw_threshold = criterion.get("pass_threshold")
    threshold = (
        1.0
        if criterion["type"] == "label_model"
        else (
            (float(raw_threshold) - low) / (high - low)
            if isinstance(raw_threshold, int | float) and high != low
            else 0.0
        )
    )
    criteria = (
        f"OpenAI Evals {criterion['type']} grader {criterion.get('name')!r} "
        f"(model {criterion.get('model')}). "
        "Its messages below use {{item.X}} for the case's input vars and {{sample.output_text}} for the "
        f"answer.\n\n{prompt}\n\n{how}"
    )
    batch.need_rubric(
        RubricSpec(
            slug=slug,
            name=f"OpenAI Evals: {criterion.get('name') or criterion['type']}",
            criteria=criteria,
            pass_threshold=max(0.0, min(1.0, threshold)),
        )
    )
    batch.need_grader(GraderSpec(slug, "llm_judge", {"expected_field": key}, slug))


def _case(
    line: int,
    row: dict[str, Any],
    criteria: list[tuple[int, dict[str, Any]]],
    template: list[dict[str, Any]] | None,
    batch: Batch,
) -> dict[str, Any] | None:
    item = row.get("item")
    if not isinstance(item, dict):
        batch.error(line, "item", f'each line is {{"item": {{...}}}}, not {kind_of(item)}')
        return None
    ident = item.get("id", item.get("key"))
    raw: dict[str, Any] = {"key": f"item-{line}" if ident is None else str(ident)}
    field = batch.options.input_field
    if field is not None:
        prompt = item.get(field)
        if not isinstance(prompt, str | list):
            batch.error(line, "input", f"item.{field} must be text or messages, not {kind_of(prompt)}")
            return None
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    else:
        messages = [
            {**m, "content": _fill(str(m.get("content", "")), item, line, batch)} for m in template or []
        ]
    raw["input"] = {"messages": messages, "vars": {k: v for k, v in item.items() if k not in ("id", "key")}}
    expected: dict[str, Any] = {}
    for _criterion_line, criterion in criteria:
        construct = f"testing_criteria {criterion.get('name') or criterion['type']}"
        if criterion["type"] in ("string_check", "text_similarity"):
            reference = _fill(str(criterion.get("reference", "")), item, line, batch)
            key, options = criterion["type"], {"threshold": criterion.get("pass_threshold")}
            if key == "string_check":
                options = {"operation": criterion["operation"]}
            elif criterion["evaluation_metric"] == "cosine":
                key = "similar"  # the cosine of embeddings, as promptfoo's `similar`
            else:
                options["metric"] = criterion["evaluation_metric"]
            carry(batch, expected, key, reference, line=line, construct=construct, options=options)
        else:
            expected[_judge_key(criterion)] = True
    raw["expected"] = expected
    return raw
