"""OpenAI Evals (the open-source registry): an eval's registry YAML and its samples, or a samples
file with the class that grades it named (--eval-class). The class decides the check:

- Match: the output starts with an ideal answer (case-sensitive) -> starts_with (any ideal);
- Includes: the output contains an ideal answer (ignore_case: as the arg says) -> contains_any;
- FuzzyMatch: after normalising, the output contains an ideal or an ideal contains the output
  -> fuzzy_match (its pass is the eval's accuracy, its score the eval's f1_score);
- JsonMatch: the output's JSON matches an ideal's, key by key -> json_match (evals' own rule);
- ModelBasedClassify: a judge with the modelgraded spec's prompt -> a draft rubric;
- other classes: not carried (their reference is kept as expected.ideal).

Samples are JSONL lines or a JSON array: `{"input": ..., "ideal": ...}`, or the legacy
`{"prompt": ..., "completion": ...}`; --input-field/--ideal-field rename them on every shape.
"""

import json
import re
from pathlib import Path
from typing import Any

import yaml

from datasets_app.importers.base import Batch, GraderSpec, RubricSpec, kind_of
from datasets_app.importers.checks import carry
from datasets_app.importers.documents import load_document
from datasets_app.importers.jsonl import json_lines

CLASSES = {
    "evals.elsuite.basic.match:Match": "Match",
    "evals.elsuite.basic.includes:Includes": "Includes",
    "evals.elsuite.basic.fuzzy_match:FuzzyMatch": "FuzzyMatch",
    "evals.elsuite.basic.json_match:JsonMatch": "JsonMatch",
    "evals.elsuite.modelgraded.classify:ModelBasedClassify": "ModelBasedClassify",
}
HARMLESS_ARGS = {
    "samples_jsonl",
    "max_tokens",
    "ignore_case",
    "modelgraded_spec",
    "eval_type",
    "modelgraded_spec_args",
}
LEGACY = ("prompt", "completion")


def read(text: str, batch: Batch) -> None:
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        _samples_only(text, batch)
        return
    document = load_document(text, batch, yaml_1_1=True)  # the registry is read by PyYAML
    if document is None:
        return
    registry = document.value
    if registry is None:
        return  # an empty file: "the file has no cases"
    if not isinstance(registry, dict):
        batch.error(1, "file", f"a registry file is a mapping of evals, not {kind_of(registry)}")
        return
    name, spec = _choose(registry, batch)
    if spec is None:
        return
    line = document.line(name)
    class_path = spec.get("class")
    args = spec.get("args") or {}
    klass = CLASSES.get(class_path, class_path)
    for arg in sorted(set(args) - HARMLESS_ARGS):
        batch.drop(document.line(name, "args", arg), f"args.{arg}", f"{klass}'s {arg} is not carried")
    samples = _registry_path(args.get("samples_jsonl"), batch, line)
    if samples is None:
        return
    grading = _Grading(klass, args, batch, line)
    sample_text = samples.read_bytes().decode("utf-8-sig")
    with batch.in_file(samples.name):
        _read_samples(sample_text, grading, batch)


def _choose(registry: dict[str, Any], batch: Batch) -> tuple[str, dict[str, Any] | None]:
    """The eval to import: --eval (an alias or a full id), else the registry's only one."""
    evals = {name: spec for name, spec in registry.items() if isinstance(spec, dict) and "class" in spec}
    wanted = batch.options.eval_name
    if wanted is not None:
        alias = registry.get(wanted)
        if isinstance(alias, dict) and isinstance(alias.get("id"), str):
            wanted = alias["id"]
        if wanted not in evals:
            batch.error(
                1, "eval", f"no eval {batch.options.eval_name!r} in this file; it has: {', '.join(evals)}"
            )
            return "", None
        return wanted, evals[wanted]
    if len(evals) != 1:
        found = ", ".join(evals) or "none"
        batch.error(1, "eval", f"the file defines {len(evals)} evals ({found}); name one with --eval")
        return "", None
    return next(iter(evals.items()))


def _registry_path(relative: Any, batch: Batch, line: int) -> Path | None:
    """A samples path of the registry: below registry/data/ (beside the evals/ folder holding the
    YAML), never outside the registry."""
    if not isinstance(relative, str):
        batch.error(line, "args.samples_jsonl", "the eval names no samples_jsonl")
        return None
    if batch.options.base_dir is None:
        batch.error(
            line,
            "args.samples_jsonl",
            "an upload cannot reach the registry's data; import with "
            "`manage.py import_cases` from the registry",
        )
        return None
    root = batch.options.base_dir.resolve().parent
    for candidate in (root / "data" / relative, batch.options.base_dir.resolve() / relative):
        path = candidate.resolve()
        if path.is_relative_to(root) and path.is_file():
            return path
    batch.error(line, "args.samples_jsonl", f"{relative}: no such file under the registry's data/")
    return None


class _Grading:
    """How the eval's class checks a sample, carried into the sample's expected."""

    def __init__(self, klass: str, args: dict[str, Any], batch: Batch, line: int) -> None:
        self.klass, self.args, self.batch, self.line = klass, args, batch, line
        self.spec_key: str | None = None
        if klass == "ModelBasedClassify":
            self.spec_key = self._modelgraded(args.get("modelgraded_spec"))
        elif klass not in ("Match", "Includes", "FuzzyMatch", "JsonMatch"):
            batch.drop(
                line,
                f"class {klass}",
                "a custom eval class is Python, and no foreign code is run; each sample's ideal is "
                "kept as expected.ideal",
            )

    def _modelgraded(self, name: Any) -> str | None:
        base_dir = self.batch.options.base_dir
        path = (
            None
            if base_dir is None
            else (base_dir.resolve().parent / "modelgraded" / f"{name}.yaml").resolve()
        )
        if not isinstance(name, str) or path is None or not path.is_file():
            self.batch.error(
                self.line, "args.modelgraded_spec", f"no modelgraded spec {name!r} in the registry"
            )
            return None
        spec = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(name)
        if not isinstance(spec, dict) or not isinstance(spec.get("prompt"), str):
            self.batch.error(self.line, "args.modelgraded_spec", f"spec {name!r} has no prompt")
            return None
        choices = spec.get("choice_strings") or ""
        scores = spec.get("choice_scores") or {}
        criteria = (
            f"OpenAI Evals modelgraded spec {name!r}. In its prompt below, {{input}} is the conversation, "
            "{ideal} is expected.ideal and {completion} is the answer.\n\n"
            f"{spec['prompt']}\n\nChoices: {' '.join(choices)}."
            + (
                f" Score each choice as: {json.dumps(scores)}; pass when the score is 1."
                if scores
                else " The spec gives no scores: the rubric owner sets what passes before signing it off."
            )
        )
        key = f"openai_modelgraded_{re.sub(r'[^a-z0-9]+', '_', name.lower())}"
        slug = f"openai-evals-{key[len('openai_') :].replace('_', '-')}"
        self.batch.need_rubric(
            RubricSpec(
                slug=slug,
                name=f"OpenAI Evals modelgraded: {name}",
                criteria=criteria,
                pass_threshold=1.0 if scores else 0.0,
            )
        )
        self.batch.need_grader(GraderSpec(slug, "llm_judge", {"expected_field": key}, slug))
        return key

    def expected(self, ideal: Any, line: int) -> dict[str, Any]:
        expected: dict[str, Any] = {}
        ideals = ideal if isinstance(ideal, list) else [ideal]
        if not all(isinstance(i, str) for i in ideals) or not ideals:
            self.batch.error(line, "ideal", "ideal must be a string or a list of strings")
            return expected
        construct = f"class {self.klass}"
        if self.klass == "Match":
            # The output starts with one of the ideals, case as written (a bare list: any of them).
            carry(self.batch, expected, "starts_with", ideals, line=line, construct=construct)
        elif self.klass == "Includes":
            # evals lower-cases both texts with str.lower (ß stays ß), not case folding.
            options = (
                {"case_sensitive": False, "case_mapping": "lowercase"} if self.args.get("ignore_case") else {}
            )
            carry(
                self.batch, expected, "contains_any", ideals, line=line, construct=construct, options=options
            )
        elif self.klass == "FuzzyMatch":
            # The ideal as the sample writes it: one text, or several (any of them).
            carry(self.batch, expected, "fuzzy_match", ideal, line=line, construct=construct)
        elif self.klass == "JsonMatch":
            self._json(expected, ideals, line)
        elif self.spec_key is not None:
            expected["ideal"] = ideal
            expected[self.spec_key] = True
        else:
            expected["ideal"] = ideal
        return expected

    def _json(self, expected: dict[str, Any], ideals: list[str], line: int) -> None:
        """The ideals as the texts evals parses when it grades (json.loads, NaN and all), read
        by the json_match grader, which decides as evals' json_match does."""
        for ideal in ideals:
            try:
                json.loads(ideal)
            except (ValueError, RecursionError) as exc:
                # evals would stop on it when grading the sample: it is refused here.
                self.batch.error(line, "ideal", f"JsonMatch: an ideal is not JSON: {exc}")
                return
        carry(self.batch, expected, "json_match", ideals, line=line, construct="class JsonMatch")


def _samples_only(text: str, batch: Batch) -> None:
    klass = batch.options.eval_class
    if klass not in ("Match", "Includes", "JsonMatch", "FuzzyMatch"):
        batch.error(
            1,
            "eval_class",
            "a samples file does not say how it is graded: import the registry YAML "
            "that names it, or pass --eval-class Match|Includes|JsonMatch|FuzzyMatch",
        )
        return
    _read_samples(text, _Grading(klass, {}, batch, 1), batch)


def _read_samples(text: str, grading: _Grading, batch: Batch) -> None:
    if text.lstrip().startswith("["):
        document = load_document(text, batch)
        if document is None:
            return
        if not isinstance(document.value, list):
            batch.error(1, "file", "a JSON samples file is an array of samples")
            return
        rows = [(document.line(i), s) for i, s in enumerate(document.value)]
    else:
        rows = list(json_lines(text, batch))
    for line, sample in rows:
        if not isinstance(sample, dict):
            batch.error(line, "sample", f"a sample is an object, not {kind_of(sample)}")
            continue
        batch.add(line, _case(line, sample, grading, batch))


def _case(line: int, sample: dict[str, Any], grading: _Grading, batch: Batch) -> dict[str, Any] | None:
    if "item" in sample:
        batch.error(
            line,
            "item",
            "a hosted Evals API item: import its eval definition with --format openai-evals-api --items FILE",
        )
        return None
    legacy = "input" not in sample and "prompt" in sample
    input_key = batch.options.input_field or ("prompt" if legacy else "input")
    ideal_key = batch.options.ideal_field or ("completion" if legacy else "ideal")
    ident = sample.get("id", sample.get("key"))
    raw: dict[str, Any] = {"key": f"line-{line}" if ident is None else str(ident)}
    prompt = sample.get(input_key)
    if isinstance(prompt, str):
        raw["input"] = {"messages": [{"role": "user", "content": prompt}]}
    elif isinstance(prompt, list):
        raw["input"] = {"messages": prompt}
    else:
        problem = "is missing" if prompt is None else f"must be a string or messages, not {kind_of(prompt)}"
        batch.error(line, "input", f"{input_key!r} {problem}")
        return None
    variables = {k: v for k, v in sample.items() if k not in (input_key, ideal_key, "id", "key")}
    if variables:
        raw["input"]["vars"] = variables
    if sample.get(ideal_key) is None:
        batch.error(line, "ideal", f"{ideal_key!r} is missing: the sample has no reference to check")
        return None
    raw["expected"] = grading.expected(sample[ideal_key], line)
    return raw
