"""Importing cases: all or nothing, line-numbered errors, drafts by default, round trips, admin upload."""

import base64
import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from datasets_app import services
from datasets_app.importers import ImportFailed, parse_cases
from datasets_app.models import UNCLASSIFIED, Case, FailureClass
from evalproject import bulk
from tests.factories import make_case, make_dataset, make_failure_class, make_user

pytestmark = pytest.mark.django_db


def row(key: str, **fields) -> dict:
    return {"key": key, "input": {"messages": [{"role": "user", "content": f"Question {key}?"}]}, **fields}


def jsonl(*rows: dict | str) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n"


def write(tmp_path: Path, data: bytes, name: str = "cases.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def run_import(dataset, path: Path, *args: str) -> str:
    out = StringIO()
    call_command("import_cases", dataset.slug, str(path), *args, stdout=out)
    return out.getvalue()


def grant(user, codename: str):
    user.user_permissions.add(Permission.objects.get(codename=codename))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached


@pytest.fixture
def factual():
    return make_failure_class("factual")


@pytest.fixture
def dataset(dataset_owner, factual):
    """A dataset that already holds one case, so "nothing written" is not "nothing there"."""
    dataset = make_dataset("support-bot", owner=dataset_owner)
    make_case(dataset, "existing-01", failure_class=factual)
    return dataset


def snapshot() -> tuple[int, int, int]:
    return Case.objects.count(), Case.history.count(), FailureClass.objects.count()


# Bad files: each kind is a CommandError naming the line and the reason, and writes nothing.

BAD_FILES = {
    "bad JSON": ("jsonl", jsonl(row("a"), '{"key": "b", "input": ', row("c")), "line 2: json: invalid JSON"),
    "not an object": ("jsonl", jsonl(row("a"), "[1, 2]"), "line 2: json: expected a JSON object"),
    "missing key": ("jsonl", jsonl(row("a"), {"input": {"vars": {"q": 1}}}), "line 2: key: missing key"),
    "missing input": ("jsonl", jsonl(row("a"), {"key": "b"}), "line 2: input: missing input"),
    "unknown field": (
        "jsonl",
        jsonl(row("a"), row("b", colour="red")),
        "line 2: fields: unknown field(s): colour",
    ),
    "unknown failure class": (
        "jsonl",
        jsonl(row("a", failure_class="factual"), row("b", failure_class="no-such-class")),
        "line 2: failure_class: unknown failure class 'no-such-class'",
    ),
    "duplicate key": (
        "jsonl",
        jsonl(row("a"), row("b"), row("a")),
        "line 3: key: duplicate key 'a': first used on line 1",
    ),
    "wrong tier": (
        "jsonl",
        jsonl(row("a"), row("b", tier="gold")),
        "line 2: tier: 'gold' is not a valid tier",
    ),
    "wrong risk": ("jsonl", jsonl(row("a", risk="extreme")), "line 1: risk: 'extreme' is not a valid risk"),
    "wrong status": ("jsonl", jsonl(row("a", status="done")), "line 1: status: 'done' is not a valid status"),
    "pinned not a boolean": ("jsonl", jsonl(row("a", pinned="yes")), "line 1: pinned: pinned must be true"),
    "expected key of the wrong type": (
        "jsonl",
        jsonl(row("a"), row("b", expected={"must_refuse": "no"})),
        "line 2: expected: expected.must_refuse must be true or false",
    ),
    "bad CSV quoting": (
        "csv",
        b'key,question\na,"Is the cell closed?\n',
        "line 2: csv: bad CSV quoting: a quoted cell is never closed",
    ),
    "stray CSV quote": (
        "csv",
        b'key,question\na,fine\nb,"x"y\n',
        "line 3: csv: bad CSV quoting",
    ),
    "CSV row of the wrong width": (
        "csv",
        b"key,question\na,fine\nb,too,many\n",
        "line 3: csv: expected 2 cells, found 3",
    ),
    "empty file": ("jsonl", b"", "line 1: file: the file has no cases"),
    "blank lines only": ("jsonl", b"\n  \n\n", "line 1: file: the file has no cases"),
    "CSV header only": ("csv", b"key,question\n", "line 1: file: the file has no cases"),
    "non-UTF-8": (
        "jsonl",
        jsonl(row("a")) + b'{"key": "caf\xe9", "input": {"vars": {}}}\n',
        "line 2: encoding: byte 0xe9 is not UTF-8",
    ),
}


@pytest.mark.parametrize(("fmt", "data", "problem"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_each_kind_of_bad_file_is_refused_with_its_line_and_reason_and_writes_nothing(
    tmp_path, dataset, dataset_owner, fmt, data, problem
):
    path = write(tmp_path, data, f"cases.{fmt}")
    before = snapshot()

    with pytest.raises(CommandError) as failed:
        run_import(dataset, path, "--format", fmt, "--as", dataset_owner.username)

    message = str(failed.value)
    assert "nothing imported" in message
    assert problem in message
    assert snapshot() == before


def test_every_bad_line_is_listed_not_only_the_first(tmp_path, dataset, dataset_owner):
    data = jsonl(row("a"), "{oops", row("b", tier="gold"), row("c"), {"input": {"vars": {}}}, row("a"))
    before = snapshot()

    with pytest.raises(CommandError) as failed:
        run_import(dataset, write(tmp_path, data), "--as", dataset_owner.username)

    message = str(failed.value)
    assert "4 problem(s)" in message
    for fragment in ("line 2: json", "line 3: tier", "line 5: key: missing key", "line 6: key: duplicate"):
        assert fragment in message
    assert snapshot() == before


def test_database_conflicts_are_listed_together_with_their_lines(dataset, dataset_owner):
    specs = parse_cases(
        jsonl(row("fresh"), row("existing-01"), row("c", failure_class="nope"), row("d", tier="trusted")),
        "jsonl",
    )
    before = snapshot()

    with pytest.raises(ImportFailed) as failed:
        services.import_cases(dataset, specs, actor=dataset_owner)

    assert [str(e) for e in failed.value.errors] == [
        "line 2: key: a case 'existing-01' already exists in support-bot",
        "line 3: failure_class: unknown failure class 'nope'",
    ]
    assert snapshot() == before


def test_a_key_already_in_the_dataset_refuses_the_whole_file(tmp_path, dataset, dataset_owner):
    path = write(tmp_path, jsonl(row("new-01"), row("existing-01"), row("new-02")))
    before = snapshot()

    with pytest.raises(CommandError) as failed:
        run_import(dataset, path, "--as", dataset_owner.username)

    assert "line 2: key: a case 'existing-01' already exists in support-bot" in str(failed.value)
    assert snapshot() == before
    assert not Case.objects.filter(key__startswith="new-").exists()


def test_the_same_key_may_exist_in_another_dataset(tmp_path, dataset, dataset_owner):
    other = make_dataset("other-bot")

    run_import(other, write(tmp_path, jsonl(row("existing-01"))), "--as", dataset_owner.username)

    assert Case.objects.filter(key="existing-01").count() == 2


def test_unknown_failure_class_option_is_refused_before_reading_the_file(tmp_path, dataset, dataset_owner):
    before = snapshot()

    with pytest.raises(CommandError, match="No failure class with slug 'nope'"):
        run_import(dataset, write(tmp_path, jsonl(row("a"))), "--failure-class", "nope")

    assert snapshot() == before


def test_unknown_dataset_and_unknown_user_are_command_errors(tmp_path, dataset):
    path = write(tmp_path, jsonl(row("a")))
    with pytest.raises(CommandError, match="No dataset with slug 'nope'"):
        call_command("import_cases", "nope", str(path))
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run_import(dataset, path, "--as", "ghost")


def test_imported_cases_enter_as_monitoring_drafts_contributed_by_the_importer(
    tmp_path, dataset, dataset_owner, factual
):
    path = write(tmp_path, jsonl(row("a", failure_class="factual"), row("b", failure_class="factual")))

    out = run_import(dataset, path, "--as", dataset_owner.username)

    assert "Imported 2 case(s) into support-bot." in out
    cases = Case.objects.filter(dataset=dataset, key__in=["a", "b"])
    assert {(c.tier, c.status, c.source, c.risk, c.pinned) for c in cases} == {
        ("monitoring", "draft", "imported", "normal", False)
    }
    assert {c.contributed_by for c in cases} == {dataset_owner}
    assert {c.audited_by for c in cases} == {None}
    history = Case.history.filter(key__in=["a", "b"])
    assert history.count() == 2
    assert {(h.history_type, h.history_user, h.history_change_reason) for h in history} == {
        ("+", dataset_owner, "imported")
    }


def test_the_file_may_set_tier_risk_pinned_and_a_review_status(tmp_path, dataset, dataset_owner, factual):
    data = jsonl(
        row("a", tier="trusted", status="in_review", risk="high", pinned=True, failure_class="factual"),
        row("b", tier="trusted", status="draft", tags=["refunds", "eu"], failure_class="factual"),
    )

    run_import(dataset, write(tmp_path, data), "--as", dataset_owner.username)

    a, b = Case.objects.filter(dataset=dataset, key__in=["a", "b"]).order_by("key")
    assert (a.tier, a.status, a.risk, a.pinned) == ("trusted", "in_review", "high", True)
    assert (b.tier, b.status, b.tags) == ("trusted", "draft", ["refunds", "eu"])


def test_cases_without_a_failure_class_take_the_failure_class_option(tmp_path, dataset, dataset_owner):
    safety = make_failure_class("safety")
    data = jsonl(row("a"), row("b", failure_class="factual"))

    run_import(dataset, write(tmp_path, data), "--failure-class", "safety", "--as", dataset_owner.username)

    a, b = Case.objects.filter(dataset=dataset, key__in=["a", "b"]).order_by("key")
    assert a.failure_class == safety
    assert b.failure_class.slug == "factual"  # the file's own class wins over the option
    assert not FailureClass.objects.filter(slug=UNCLASSIFIED).exists()


def test_cases_without_a_failure_class_go_to_unclassified_without_the_option(
    tmp_path, dataset, dataset_owner
):
    assert not FailureClass.objects.filter(slug=UNCLASSIFIED).exists()

    run_import(dataset, write(tmp_path, jsonl(row("a"), row("b"))), "--as", dataset_owner.username)

    assert set(Case.objects.filter(key__in=["a", "b"]).values_list("failure_class__slug", flat=True)) == {
        UNCLASSIFIED
    }


def test_csv_without_failure_class_column_takes_the_failure_class_option(tmp_path, dataset, dataset_owner):
    safety = make_failure_class("safety")
    path = write(tmp_path, b"key,question,answer\nq1,Can I get a refund?,No\n", "cases.csv")

    run_import(dataset, path, "--format", "csv", "--failure-class", "safety", "--as", dataset_owner.username)

    case = Case.objects.get(dataset=dataset, key="q1")
    assert case.failure_class == safety
    assert case.input == {"messages": [{"role": "user", "content": "Can I get a refund?"}]}
    assert case.expected == {"answer": "No"}


def test_a_failed_import_does_not_create_the_unclassified_class(tmp_path, dataset, dataset_owner):
    with pytest.raises(CommandError):
        run_import(
            dataset, write(tmp_path, jsonl(row("a"), row("existing-01"))), "--as", dataset_owner.username
        )

    assert not FailureClass.objects.filter(slug=UNCLASSIFIED).exists()


# Who may import which status.


def test_a_reviewer_may_import_active_monitoring_cases_and_is_their_auditor(dataset, factual):
    reviewer = grant(make_user(roles=("Reviewer",)), "import_cases")
    specs = parse_cases(jsonl(row("a", status="active", failure_class="factual")), "jsonl")

    (case,) = services.import_cases(dataset, specs, actor=reviewer)

    case.refresh_from_db()
    assert (case.tier, case.status) == ("monitoring", "active")
    assert case.audited_by == reviewer
    assert case.audited_at is not None


def test_trusted_cases_a_file_calls_active_arrive_in_review_not_audited(dataset, dataset_owner):
    assert dataset_owner.has_perm("datasets_app.audit_case")
    specs = parse_cases(jsonl(row("a", status="active", tier="trusted", failure_class="factual")), "jsonl")

    (case,) = services.import_cases(dataset, specs, actor=dataset_owner)

    case.refresh_from_db()
    assert (case.tier, case.status) == ("trusted", "in_review")
    assert case.audited_by is None and case.audited_at is None


def test_active_status_is_refused_for_a_domain_expert(tmp_path, dataset):
    expert = grant(make_user(roles=("Domain expert",)), "import_cases")
    data = jsonl(row("a", failure_class="factual"), row("b", status="active", failure_class="factual"))
    before = snapshot()

    with pytest.raises(CommandError) as failed:
        run_import(dataset, write(tmp_path, data), "--as", expert.username)

    assert "line 2: status: only reviewers may import active cases" in str(failed.value)
    assert snapshot() == before


def test_a_domain_expert_may_import_drafts_once_allowed_to_import(dataset):
    expert = grant(make_user(roles=("Domain expert",)), "import_cases")
    specs = parse_cases(jsonl(row("a", failure_class="factual", status="in_review")), "jsonl")

    (case,) = services.import_cases(dataset, specs, actor=expert)

    assert (case.status, case.contributed_by) == ("in_review", expert)


def test_a_user_without_the_import_permission_cannot_import(tmp_path, dataset, expert):
    assert not expert.has_perm("datasets_app.import_cases")
    before = snapshot()

    with pytest.raises(CommandError, match="not allowed to import cases"):
        run_import(dataset, write(tmp_path, jsonl(row("a"))), "--as", expert.username)
    with pytest.raises(PermissionDenied):
        services.import_cases(dataset, parse_cases(jsonl(row("a")), "jsonl"), actor=expert)

    assert snapshot() == before


# Volume.


def test_a_ten_thousand_case_jsonl_import_succeeds_with_one_history_row_each(
    tmp_path, dataset_owner, factual
):
    dataset = make_dataset("big")
    lines = [
        json.dumps(
            {
                "key": f"case-{i:05d}",
                "failure_class": "factual",
                "input": {"messages": [{"role": "user", "content": f"What is {i} + 1?"}]},
                "expected": {"answer": str(i + 1)},
            }
        )
        for i in range(10_000)
    ]
    path = write(tmp_path, ("\n".join(lines) + "\n").encode())
    history_before = Case.history.count()

    out = run_import(dataset, path, "--as", dataset_owner.username)

    assert "Imported 10000 case(s) into big." in out
    assert Case.objects.filter(dataset=dataset).count() == 10_000
    history = Case.history.filter(dataset=dataset)
    assert history.count() == Case.history.count() - history_before == 10_000
    assert history.filter(history_type="+", history_user=dataset_owner).count() == 10_000
    assert Case.objects.get(dataset=dataset, key="case-09999").expected == {"answer": "10000"}


# Round trips.

COMPARED = ("key", "tier", "failure_class__slug", "risk", "pinned", "tags", "input", "expected", "status")


def cases_of(dataset) -> list[tuple]:
    return list(Case.objects.filter(dataset=dataset).order_by("key").values_list(*COMPARED))


def make_varied_dataset(dataset_owner):
    """Cases that an importer may write back: drafts, in review, and active monitoring ones."""
    source = make_dataset("source", owner=dataset_owner)
    factual, safety = make_failure_class("factual"), make_failure_class("safety")
    contributor = make_user(roles=("Domain expert",))
    make_case(
        source,
        "refund-01",
        failure_class=factual,
        active=False,
        risk="high",
        pinned=True,
        tags=["refunds", "a;b"],
        expected={"answer": "No", "contains": ["40 days"], "must_refuse": False},
        contributor=contributor,
    )
    services.submit_case(
        make_case(source, "jailbreak-02", failure_class=safety, active=False, contributor=contributor),
        actor=contributor,
    )
    make_case(
        source,
        "drift-03",
        failure_class=factual,
        tier="monitoring",
        risk="low",
        expected={"number": 4.5, "tolerance": 0.1},
        contributor=contributor,
    )
    case = make_case(source, "unicode-04", failure_class=safety, active=False, contributor=contributor)
    services.edit_case(
        case,
        actor=contributor,
        input={
            "messages": [
                {"role": "system", "content": 'Quote "exactly",\nthen stop.'},
                {"role": "user", "content": 'Straße\u2028日本語, "quotes" and a\nnewline'},
            ],
            "vars": {"n": 3, "flag": None},
        },
        expected={},
    )
    return source


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_import_into_a_new_dataset_gives_the_same_cases(tmp_path, dataset_owner, fmt):
    source = make_varied_dataset(dataset_owner)
    target = make_dataset("copy")
    exported = tmp_path / f"export.{fmt}"

    call_command("export_cases", source.slug, "--format", fmt, "--output", str(exported))
    run_import(target, exported, "--format", fmt, "--as", dataset_owner.username)

    assert len(cases_of(source)) == 4
    assert [c[1:] for c in cases_of(target)] == [c[1:] for c in cases_of(source)]
    assert [c[0] for c in cases_of(target)] == [c[0] for c in cases_of(source)]


def test_export_leaves_out_retired_cases(dataset, dataset_owner, factual):
    retired = make_case(dataset, "old-02", failure_class=factual, tier="monitoring")
    services.retire_case(retired, actor=dataset_owner)

    text = services.export_cases(dataset, "jsonl", actor=dataset_owner)

    assert [json.loads(line)["key"] for line in text.splitlines()] == ["existing-01"]


def test_a_dataset_with_active_trusted_cases_round_trips(tmp_path, dataset, dataset_owner):
    target = make_dataset("copy")
    exported = tmp_path / "export.jsonl"
    call_command("export_cases", dataset.slug, "--output", str(exported))

    run_import(target, exported, "--as", dataset_owner.username)

    assert [c[:8] for c in cases_of(target)] == [c[:8] for c in cases_of(dataset)]


# The admin upload page: upload -> preview -> confirm.


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


@pytest.fixture
def owner_client(client, dataset_owner):
    client.force_login(dataset_owner)
    return client


def test_admin_import_page_shows_the_upload_form(owner_client, dataset):
    response = owner_client.get(import_url(dataset))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'enctype="multipart/form-data"' in content
    assert 'name="file"' in content
    assert "Import cases into support-bot" in content


def test_admin_upload_previews_the_cases_and_writes_nothing(owner_client, dataset):
    data = jsonl(row("a", failure_class="factual", tier="trusted"), row("b"))
    before = snapshot()

    response = upload(owner_client, dataset, data)

    assert response.status_code == 200
    assert snapshot() == before
    assert response.context["total"] == 2
    assert [spec.key for spec in response.context["preview"]] == ["a", "b"]
    content = response.content.decode()
    assert 'id="import-preview"' in content
    assert "2 case(s) ready to import" in content
    assert 'name="confirmed" value="yes"' in content
    assert base64.b64decode(response.context["payload"]) == data


def test_admin_confirmed_upload_creates_the_cases(owner_client, dataset, dataset_owner):
    safety = make_failure_class("safety")
    data = jsonl(row("a", failure_class="factual"), row("b"))
    preview = upload(owner_client, dataset, data, failure_class=str(safety.pk))

    response = owner_client.post(
        import_url(dataset),
        {
            "payload": preview.context["payload"],
            "format": "jsonl",
            "input_field": "input",
            "ideal_field": "ideal",
            "failure_class": str(safety.pk),
            "confirmed": "yes",
        },
    )

    assert response.status_code == 302
    assert response.url == reverse("admin:datasets_app_dataset_change", args=[dataset.pk])
    a, b = Case.objects.filter(dataset=dataset, key__in=["a", "b"]).order_by("key")
    assert (a.failure_class.slug, b.failure_class.slug) == ("factual", "safety")
    assert {(c.status, c.tier, c.contributed_by) for c in (a, b)} == {("draft", "monitoring", dataset_owner)}
    assert Case.history.filter(key__in=["a", "b"], history_user=dataset_owner).count() == 2


def test_admin_bad_file_lists_every_error_and_writes_nothing(owner_client, dataset):
    data = jsonl(row("a"), "{broken", row("b", tier="gold"), row("a"))
    before = snapshot()

    response = upload(owner_client, dataset, data)

    assert response.status_code == 200
    assert snapshot() == before
    assert [str(e) for e in response.context["errors"]] == [
        "line 2: json: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        "line 3: tier: 'gold' is not a valid tier; use one of: trusted, monitoring",
        "line 4: key: duplicate key 'a': first used on line 1",
    ]
    content = response.content.decode()
    assert "nothing was written" in content
    assert 'id="import-errors"' in content
    assert 'id="import-preview"' not in content


def test_admin_non_utf8_file_is_listed_as_an_error(owner_client, dataset):
    before = snapshot()

    response = upload(owner_client, dataset, b'{"key": "\xff"}\n')

    assert [str(e) for e in response.context["errors"]] == [
        "line 1: encoding: byte 0xff is not UTF-8; save the file as UTF-8"
    ]
    assert snapshot() == before


def test_admin_confirm_lists_database_conflicts_and_writes_nothing(owner_client, dataset):
    data = jsonl(row("new-01"), row("existing-01"))
    payload = base64.b64encode(data).decode()
    before = snapshot()

    response = owner_client.post(
        import_url(dataset),
        {"payload": payload, "format": "jsonl", "confirmed": "yes"},
    )

    assert response.status_code == 200
    assert [str(e) for e in response.context["errors"]] == [
        "line 2: key: a case 'existing-01' already exists in support-bot"
    ]
    assert snapshot() == before


def test_admin_preview_already_lists_database_conflicts(owner_client, dataset):
    response = upload(owner_client, dataset, jsonl(row("existing-01"), row("b", failure_class="nope")))

    assert [str(e) for e in response.context.get("errors", [])] == [
        "line 1: key: a case 'existing-01' already exists in support-bot",
        "line 2: failure_class: unknown failure class 'nope'",
    ]


def test_admin_import_page_is_forbidden_without_the_import_permission(client, reviewer, dataset):
    client.force_login(reviewer)
    before = snapshot()

    assert client.get(import_url(dataset)).status_code == 403
    assert upload(client, dataset, jsonl(row("a"))).status_code == 403
    assert snapshot() == before


def test_imported_cases_and_their_history_rows_are_what_the_orm_would_write(dataset, dataset_owner, factual):
    """The import writes by COPY on PostgreSQL: its rows must be the ORM's, field for field."""
    from simple_history.utils import bulk_create_with_history

    lines = [row(f"c{i}", failure_class="factual", tags=["a", f"t{i}"], expected={"n": i}) for i in range(5)]
    created = services.import_cases(dataset, parse_cases(jsonl(*lines), "jsonl"), actor=dataset_owner)
    assert all(c.pk for c in created) and [c.key for c in created] == [f"c{i}" for i in range(5)]
    other = make_dataset("reference", owner=dataset_owner)
    reference = bulk_create_with_history(
        [Case(**{**model_fields(c), "dataset_id": other.pk}) for c in created],
        Case,
        default_user=dataset_owner,
        default_change_reason="imported",
    )
    for case, ref in zip(created, reference, strict=True):
        stored = Case.objects.get(pk=case.pk)
        assert model_fields(stored) == model_fields(Case.objects.get(pk=ref.pk)) | {"dataset_id": dataset.pk}
        assert (stored.created_at, stored.updated_at) == (case.created_at, case.updated_at)
        [history] = stored.history.all()
        [ref_history] = Case.objects.get(pk=ref.pk).history.all()
        skip = {"id", "dataset_id", "created_at", "updated_at", "history_id", "history_date"}
        assert {k: v for k, v in history_fields(history).items() if k not in skip} == {
            k: v for k, v in history_fields(ref_history).items() if k not in skip
        }
        assert (history.id, history.created_at, history.history_type) == (case.pk, stored.created_at, "+")
        assert (history.history_user_id, history.history_change_reason) == (dataset_owner.pk, "imported")


def model_fields(case) -> dict:
    skip = {"id", "created_at", "updated_at"}
    return {f.attname: getattr(case, f.attname) for f in Case._meta.concrete_fields if f.attname not in skip}


def history_fields(history) -> dict:
    return {f.attname: getattr(history, f.attname) for f in type(history)._meta.concrete_fields}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ANALYZE statistics are PostgreSQL's")
def test_a_large_import_refreshes_the_planner_statistics(dataset, dataset_owner, monkeypatch):
    # The next check looks the imported keys up: planned on the statistics from before the
    # import, it read the table sequentially for each batch of keys.
    monkeypatch.setattr(bulk, "ANALYZE_AFTER_ROWS", 50)

    def estimated_rows() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [Case._meta.db_table])
            return cursor.fetchone()[0]

    before = estimated_rows()
    services.import_cases(
        dataset, parse_cases(jsonl(*(row(f"few-{i}") for i in range(49))), "jsonl"), actor=dataset_owner
    )
    assert estimated_rows() == before  # below the threshold: left to autovacuum
    services.import_cases(
        dataset, parse_cases(jsonl(*(row(f"many-{i}") for i in range(50))), "jsonl"), actor=dataset_owner
    )
    assert estimated_rows() == Case.objects.count()  # every row, the earlier ones too
