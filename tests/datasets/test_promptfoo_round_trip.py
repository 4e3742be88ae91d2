"""promptfoo -> Evalgate -> promptfoo export -> Evalgate gives the same cases and graders, and
promptfoo itself runs the exported config."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from datasets_app.importers import read_cases
from datasets_app.models import Case
from datasets_app.services import export_cases
from tests.datasets.corpus_helpers import CORPUS, PROMPTFOO, promptfoo_results
from tests.factories import make_dataset, make_failure_class, make_user

pytestmark = pytest.mark.django_db

FIELDS = ("key", "tier", "failure_class__slug", "risk", "pinned", "tags", "input", "expected")


def imported(dataset, path: Path) -> None:
    call_command(
        "import_cases",
        dataset.slug,
        str(path),
        "--format",
        "promptfoo",
        "--as",
        "importer",
        stdout=io.StringIO(),
    )


def rows(dataset) -> list[tuple]:
    return list(Case.objects.filter(dataset=dataset).order_by("key").values_list(*FIELDS))


@pytest.fixture
def exported(tmp_path):
    make_user("importer", roles=("Dataset owner", "Rubric owner"))
    make_failure_class("refunds")
    first = make_dataset("first")
    for suite in ("basic", "csv", "chat", "multi"):
        imported(
            first,
            CORPUS
            / "promptfoo"
            / suite
            / next((CORPUS / "promptfoo" / suite).glob("promptfooconfig.*")).name,
        )
    notes: list[str] = []
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(export_cases(first, "promptfoo", actor=None, notes=notes))
    return first, path, notes


def test_an_exported_suite_imports_back_to_the_same_cases_and_graders(exported):
    first, path, notes = exported
    second = make_dataset("second")
    planned = read_cases(path.read_bytes(), "promptfoo", base_dir=path.parent)
    original = {
        g.slug
        for suite in ("basic", "csv", "chat", "multi")
        for g in read_cases(
            next((CORPUS / "promptfoo" / suite).glob("promptfooconfig.*")).read_bytes(),
            "promptfoo",
            base_dir=CORPUS / "promptfoo" / suite,
        ).graders
    }

    imported(second, path)

    assert notes == []
    assert len(rows(first)) == 17
    assert rows(second) == rows(first)
    assert {g.slug for g in planned.graders} == original


def test_an_evalgate_case_without_a_template_exports_its_messages_and_says_what_promptfoo_cannot_check():
    dataset = make_dataset("native")
    make_user("importer", roles=("Dataset owner", "Rubric owner"))
    lines = [
        {
            "key": "n1",
            "input": {"messages": [{"role": "user", "content": "Hi"}]},
            "expected": {"answer": "Hello", "contains": ["hello"]},
            "tags": ["greeting"],
        }
    ]
    from datasets_app import services

    services.import_cases(
        dataset, read_cases("\n".join(json.dumps(x) for x in lines).encode(), "jsonl"), actor=None
    )
    notes: list[str] = []

    text = export_cases(dataset, "promptfoo", actor=None, notes=notes)
    back = read_cases(text.encode(), "promptfoo")

    assert notes == ["case n1: expected.answer has no promptfoo assertion"]
    (spec,) = back.specs
    # contains is promptfoo's icontains, which reads back as promptfoo decides it (lower-casing).
    assert (spec.key, spec.input, spec.expected, spec.tags) == (
        "n1",
        {"messages": [{"role": "user", "content": "Hi"}]},
        {"contains_all": {"value": ["hello"], "case_sensitive": False, "case_mapping": "lowercase"}},
        ["greeting"],
    )


@pytest.mark.skipif(not PROMPTFOO.exists(), reason="promptfoo is not installed on this machine")
def test_promptfoo_runs_the_exported_config_with_its_echo_provider(exported):
    _first, path, _notes = exported

    results = promptfoo_results(path)

    assert len(results) == 17
    sent = {r["testCase"]["metadata"]["key"]: r["prompt"]["raw"] for r in results}
    assert sent["greeting"] == "Convert this English to French: Hello world"
    assert json.loads(sent["sizes-2"]) == [
        {"role": "system", "content": "You sell shirts."},
        {"role": "user", "content": "Do you have a large shirt?"},
    ]
    # The CSV row with a __threshold is a thresholded test again: either check passing passes.
    thanks = next(r for r in results if r["testCase"]["metadata"]["key"] == "thanks")
    assert (thanks["testCase"]["threshold"], thanks["success"]) == (0.5, False)


def test_negated_and_scored_assertions_export_and_import_back_the_same():
    from datasets_app.importers import export_promptfoo

    plan = read_cases(
        (CORPUS / "promptfoo" / "negations" / "promptfooconfig.yaml").read_bytes(),
        "promptfoo",
        base_dir=CORPUS / "promptfoo" / "negations",
    )
    text, notes = export_promptfoo(spec.to_dict() for spec in plan.specs)
    back = read_cases(text.encode(), "promptfoo")

    # The provider's tool definitions live in promptfoo's provider config, not in a test.
    assert notes == ["case refund-call: expected.tool_definitions has no promptfoo assertion"]
    without_tools = [{k: v for k, v in s.expected.items() if k != "tool_definitions"} for s in plan.specs]
    assert [s.expected for s in back.specs] == without_tools
    assert back.dropped == [] and back.errors == []
