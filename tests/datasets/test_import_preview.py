"""One pass over a file and the database: every bad line at once, and a preview of each case as it arrives."""

import base64
import html
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from datasets_app import services
from datasets_app.importers import ImportFailed, read_cases
from datasets_app.models import UNCLASSIFIED, Case, FailureClass
from tests.factories import make_case, make_dataset, make_failure_class, make_user

pytestmark = pytest.mark.django_db


def row(key: str, **fields) -> dict:
    return {"key": key, "input": {"messages": [{"role": "user", "content": f"Question {key}?"}]}, **fields}


def jsonl(*rows: dict | str) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n"


def snapshot() -> tuple[int, int, int]:
    return Case.objects.count(), Case.history.count(), FailureClass.objects.count()


@pytest.fixture
def factual():
    return make_failure_class("factual")


@pytest.fixture
def dataset(dataset_owner, factual):
    """A dataset that already holds one case, so "nothing written" is not "nothing there"."""
    dataset = make_dataset("support-bot", owner=dataset_owner)
    make_case(dataset, "existing-01", failure_class=factual)
    return dataset


# Three kinds of error in one file: bad JSON (the file's own), an unknown failure class and a
# key the dataset already holds (both only the database can tell).
THREE_KINDS = jsonl(
    row("fresh-01", failure_class="factual"),
    '{"key": "broken", "input": ',
    row("fresh-02", failure_class="no-such-class"),
    row("existing-01", failure_class="factual"),
)
THREE_PROBLEMS = [
    (2, "json", "invalid JSON"),
    (3, "failure_class", "unknown failure class 'no-such-class'"),
    (4, "key", "a case 'existing-01' already exists in support-bot"),
]


def problems(errors) -> list[tuple[int, str]]:
    return [(e.line, e.field) for e in errors]


def assert_three_problems(errors) -> None:
    assert problems(errors) == [(line, field) for line, field, _ in THREE_PROBLEMS]
    for error, (_, _, message) in zip(errors, THREE_PROBLEMS, strict=True):
        assert message in error.message


# The import service and the command.


def test_the_import_service_lists_file_errors_and_database_conflicts_together(dataset, dataset_owner):
    before = snapshot()

    with pytest.raises(ImportFailed) as failed:
        services.import_cases(dataset, read_cases(THREE_KINDS, "jsonl"), actor=dataset_owner)

    assert_three_problems(failed.value.errors)
    assert snapshot() == before


def test_check_import_gives_the_same_list_without_writing(dataset, dataset_owner):
    before = snapshot()

    errors = services.check_import(dataset, read_cases(THREE_KINDS, "jsonl"), actor=dataset_owner)

    assert_three_problems(errors)
    assert snapshot() == before


def test_import_cases_command_lists_all_three_kinds_in_one_error_and_writes_nothing(
    tmp_path: Path, dataset, dataset_owner
):
    path = tmp_path / "cases.jsonl"
    path.write_bytes(THREE_KINDS)
    before = snapshot()

    with pytest.raises(CommandError) as failed:
        call_command(
            "import_cases", dataset.slug, str(path), "--as", dataset_owner.username, stdout=StringIO()
        )

    message = str(failed.value)
    assert "nothing imported; 3 problem(s)" in message
    fragments = [f"line {line}: {field}: {text}" for line, field, text in THREE_PROBLEMS]
    positions = [message.index(fragment) for fragment in fragments]
    assert positions == sorted(positions)  # in line order
    assert snapshot() == before
    assert not Case.objects.filter(key__startswith="fresh-").exists()
    assert not FailureClass.objects.filter(slug=UNCLASSIFIED).exists()


def test_a_bad_line_reports_its_database_conflicts_too(dataset, dataset_owner):
    data = jsonl(row("existing-01", tier="gold"), row("ok"), row("x", failure_class="nope", risk="extreme"))

    errors = services.check_import(dataset, read_cases(data, "jsonl"), actor=dataset_owner)

    # On each line the file's own error first, then what the database says.
    assert [str(e) for e in errors] == [
        "line 1: tier: 'gold' is not a valid tier; use one of: trusted, monitoring",
        "line 1: key: a case 'existing-01' already exists in support-bot",
        "line 3: risk: 'extreme' is not a valid risk; use one of: low, normal, high",
        "line 3: failure_class: unknown failure class 'nope'",
    ]


def test_a_status_not_allowed_is_listed_beside_the_lines_shape_errors(dataset, factual):
    expert = make_user(roles=("Domain expert",))
    expert.user_permissions.add(Permission.objects.get(codename="import_cases"))
    expert = type(expert).objects.get(pk=expert.pk)  # permissions are cached
    data = jsonl(
        row("a", status="active", failure_class="factual", pinned="yes"),
        row("b", status="active", tier="gold"),  # a tier in error: activating it is not judged
    )

    with pytest.raises(ImportFailed) as failed:
        services.import_cases(dataset, read_cases(data, "jsonl"), actor=expert)

    assert problems(failed.value.errors) == [(1, "pinned"), (1, "status"), (2, "tier")]
    assert failed.value.errors[1].message == "only reviewers may import active cases"


def test_promptfoo_conflicts_are_numbered_by_line_like_its_own_problems(dataset, dataset_owner):
    data = b"""
- description: bad assert
  vars: {question: "Refund?"}
  assert: [{type: javascript, value: "true"}]
- vars: {question: "Refund after 40 days?"}
  metadata: {key: existing-01}
"""

    errors = services.check_import(dataset, read_cases(data, "promptfoo"), actor=dataset_owner)

    where = [(e.unit, e.line, e.field) for e in errors]
    assert where == [("line", 4, "assert javascript"), ("line", 5, "key")]
    assert str(errors[1]) == "line 5: key: a case 'existing-01' already exists in support-bot"


def test_parse_cases_still_raises_for_the_files_own_errors_only(dataset):
    from datasets_app.importers import parse_cases

    with pytest.raises(ImportFailed) as failed:
        parse_cases(THREE_KINDS, "jsonl")

    assert problems(failed.value.errors) == [(2, "json")]


def test_read_cases_returns_an_encoding_error_instead_of_raising():
    parsed = read_cases(b'{"key": "caf\xe9"}\n', "jsonl")

    assert parsed.specs == []
    assert [str(e) for e in parsed.errors] == [
        "line 1: encoding: byte 0xe9 is not UTF-8; save the file as UTF-8"
    ]


def test_a_file_of_only_bad_lines_is_not_also_called_empty(dataset, dataset_owner):
    errors = services.check_import(dataset, read_cases(jsonl("{oops", "[1]"), "jsonl"), actor=dataset_owner)

    assert problems(errors) == [(1, "json"), (2, "json")]


# The admin preview.


def import_url(dataset) -> str:
    return reverse("admin:datasets_app_dataset_import", args=[dataset.pk])


def upload(client, dataset, data: bytes, fmt: str = "jsonl", **fields):
    body = {
        "file": SimpleUploadedFile(f"cases.{fmt}", data),
        "format": fmt,
        "input_field": "input",
        "ideal_field": "ideal",
        **fields,
    }
    return client.post(import_url(dataset), body)


def confirm(client, dataset, preview, **fields):
    return client.post(
        import_url(dataset),
        {
            "payload": preview.context["payload"],
            "format": "jsonl",
            "input_field": "input",
            "ideal_field": "ideal",
            "failure_class": "",
            "confirmed": "yes",
            **fields,
        },
    )


@pytest.fixture
def owner_client(client, dataset_owner):
    client.force_login(dataset_owner)
    return client


def text_of(response) -> str:
    """The page as a reader sees it: tags stripped, entities decoded, whitespace collapsed."""
    body = re.sub(r"<style.*?</style>", " ", response.content.decode(), flags=re.S)
    body = re.sub(r"</?(?:b|strong|em|a|span)\b[^>]*>", "", body)  # inline: no break in the text
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def preview_cells(response) -> list[list[str]]:
    """The preview table's rows, each a list of its cells' text (tags stripped, entities decoded)."""
    table = re.search(r'<table id="import-preview">.*?<tbody>(.*?)</tbody>', response.content.decode(), re.S)
    assert table, "no preview table"
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", " ", cell))
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        ]
        for tr in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    ]


def test_the_preview_lists_all_three_kinds_of_error_at_once_and_writes_nothing(owner_client, dataset):
    before = snapshot()

    response = upload(owner_client, dataset, THREE_KINDS)

    assert response.status_code == 200
    assert_three_problems(response.context["errors"])
    text = text_of(response)
    assert "nothing was written" in text and "3 problems found" in text
    for line, field, message in THREE_PROBLEMS:
        assert f"line {line}: {field}: " in text and message in text
    assert 'id="import-preview"' not in response.content.decode()
    assert snapshot() == before


def test_the_preview_shows_a_trusted_active_line_arriving_in_review_and_says_why(owner_client, dataset):
    data = jsonl(
        row("t", tier="trusted", status="active", failure_class="factual"),
        row("m", status="active", failure_class="factual"),  # the dataset owner may activate these
        row("d", failure_class="factual"),
    )

    preview = upload(owner_client, dataset, data)

    statuses = {cells[1]: " ".join(cells[7].split()) for cells in preview_cells(preview)}
    assert statuses["t"].startswith("in_review ")
    assert "arrives in review" in statuses["t"]
    assert "someone other than its contributor" in statuses["t"]
    assert statuses["m"].startswith("active ") and "recorded as its auditor" in statuses["m"]
    assert statuses["d"] == "draft"
    assert "Once imported they are: 1 draft, 1 in_review, 1 active." in text_of(preview)

    # What the preview promised is what the import does.
    assert confirm(owner_client, dataset, preview).status_code == 302
    imported = dict(Case.objects.filter(dataset=dataset, key__in=statuses).values_list("key", "status"))
    assert imported == {key: shown.split()[0] for key, shown in statuses.items()}


def test_the_preview_shows_input_and_expected_as_pretty_json_not_python(owner_client, dataset):
    case = row("q", failure_class="factual", expected={"answer": "Nein", "must_refuse": False, "note": None})
    case["input"]["messages"][0]["content"] = "Straße?"

    response = upload(owner_client, dataset, jsonl(case))

    content = html.unescape(response.content.decode())
    assert '"messages": [' in content
    assert '"must_refuse": false' in content and '"note": null' in content
    assert "Straße?" in content  # as written, not \u escapes
    assert "{'" not in content and "'messages'" not in content and "False" not in content
    shown = re.findall(r'<pre class="import-json">(.*?)</pre>', response.content.decode(), re.S)
    assert [html.unescape(s) for s in shown] == [
        json.dumps(case["input"], indent=2, ensure_ascii=False),
        json.dumps(case["expected"], indent=2, ensure_ascii=False),
    ]


def test_the_preview_names_the_failure_class_a_line_without_one_gets(owner_client, dataset):
    safety = make_failure_class("safety")
    data = jsonl(row("a"), row("b", failure_class="factual"))

    with_default = preview_cells(upload(owner_client, dataset, data, failure_class=str(safety.pk)))
    without = preview_cells(upload(owner_client, dataset, data))

    assert [" ".join(cells[3].split()) for cells in with_default] == [
        "safety (the default chosen above)",
        "factual",
    ]
    assert [" ".join(cells[3].split()) for cells in without] == ["unclassified (needs triage)", "factual"]


def test_a_conflict_found_at_confirm_time_offers_a_fresh_upload_form(owner_client, dataset, factual):
    preview = upload(owner_client, dataset, jsonl(row("late", failure_class="factual")))
    make_case(dataset, "late", failure_class=factual)  # someone else took the key meanwhile
    before = snapshot()

    response = confirm(owner_client, dataset, preview)

    assert response.status_code == 200
    assert [str(e) for e in response.context["errors"]] == [
        "line 1: key: a case 'late' already exists in support-bot"
    ]
    assert "This field is required" not in response.content.decode()
    assert 'name="file"' in response.content.decode()
    assert snapshot() == before


def test_a_hand_made_post_with_an_unknown_format_is_an_error_not_a_crash(owner_client, dataset):
    payload = base64.b64encode(jsonl(row("a"))).decode()

    response = owner_client.post(
        import_url(dataset), {"payload": payload, "format": "xml", "confirmed": "yes"}
    )

    assert response.status_code == 200
    assert response.context["errors"] == [
        "unknown format 'xml'; use one of: jsonl, csv, promptfoo, openai-evals, inspect, deepeval, "
        "langsmith, langfuse"
    ]
