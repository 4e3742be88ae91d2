"""Applying an import plan: losses refused or recorded, graders reused or created by who may,
rubric drafts waiting for their owner, gate rules added by the gate's owner; nothing written
when anything is refused."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit_app.choices import Action
from audit_app.models import AuditEvent
from datasets_app.models import Case
from gates_app.models import GateRule
from grading_app.choices import RubricState
from grading_app.graders import get_kind
from grading_app.models import Grader, Rubric, RubricVersion
from tests.datasets.corpus_helpers import CORPUS
from tests.factories import make_dataset, make_endpoint, make_failure_class, make_gate, make_grader, make_user

pytestmark = pytest.mark.django_db

LOSSY = CORPUS / "promptfoo" / "lossy" / "promptfooconfig.yaml"
BASIC = CORPUS / "promptfoo" / "basic" / "promptfooconfig.yaml"
JUDGES = CORPUS / "promptfoo" / "judges" / "promptfooconfig.yaml"


def run_import(dataset, path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_cases", dataset.slug, str(path), "--format", "promptfoo", *args, stdout=out)
    return out.getvalue()


def written() -> tuple[int, int, int, int]:
    return (
        Case.objects.count(),
        Grader.objects.count(),
        RubricVersion.objects.count(),
        GateRule.objects.count(),
    )


@pytest.fixture
def importer(db):
    """Someone who may import cases and bring the graders and rubrics they need."""
    return make_user("importer", roles=("Dataset owner", "Rubric owner"), is_staff=True)


@pytest.fixture(autouse=True)
def refunds(db):
    return make_failure_class("refunds")  # the basic suite's first test names it


def test_a_lossy_file_is_refused_listing_every_construct_and_writes_nothing(importer):
    dataset = make_dataset(owner=importer)

    with pytest.raises(CommandError) as failed:
        run_import(dataset, LOSSY, "--as", "importer")

    message = str(failed.value)
    assert "nothing imported; 7 problem(s)" in message  # 6 not carried, and no embedding endpoint
    assert "line 7: assert javascript: not carried: it runs JavaScript" in message
    assert (
        "line 26: assert is-valid-openai-function-call: not carried: the config's provider declares"
        in message
    )
    # What the carried constructs need is named in the same attempt.
    assert (
        "graders: similarity assertions compare embeddings: give --embedding-endpoint and --embedding-model"
        in (message)
    )
    assert written() == (0, 0, 0, 0)


def test_an_embedding_endpoint_that_does_not_exist_is_refused_before_anything_is_written(importer):
    dataset = make_dataset(owner=importer)
    named = ("--embedding-endpoint", "embedings", "--embedding-model", "text-embedding-3-small")

    with pytest.raises(CommandError) as failed:
        run_import(dataset, LOSSY, "--as", "importer", "--allow-lossy", *named)

    assert "graders: no endpoint named 'embedings'" in str(failed.value)
    assert written() == (0, 0, 0, 0)


def test_allow_lossy_imports_the_rest_prints_the_losses_and_keeps_them_on_the_dataset(importer):
    dataset = make_dataset(owner=importer)

    make_endpoint("http://127.0.0.1:9/v1", name="embeddings")

    out = run_import(
        dataset,
        LOSSY,
        "--as",
        "importer",
        "--allow-lossy",
        "--embedding-endpoint",
        "embeddings",
        "--embedding-model",
        "text-embedding-3-small",
    )

    assert "Imported 1 case(s)" in out
    assert "Not carried (6), recorded on the dataset's history:" in out
    assert (
        "  line 27: assert python: it runs JavaScript, Python or a webhook, and no foreign code is run" in out
    )
    case = Case.objects.get(dataset=dataset)
    carried = case.expected["assertion_set"]  # the test's threshold: one weighted score
    assert (case.key, case.status, carried["threshold"], len(carried["assertions"])) == (
        "kept-and-dropped",
        "draft",
        0.5,
        6,
    )
    reason = dataset.history.order_by("-history_id").first().history_change_reason
    assert reason.startswith("imported promptfoo promptfooconfig.yaml without: line 4: defaultTest.options")
    assert "line 26: assert is-valid-openai-function-call: the config's provider declares no tools" in reason
    assert "line 12: threshold: the weighted score is taken over the assertions carried" in reason
    event = AuditEvent.objects.get(action=Action.CASES_IMPORTED)
    assert len(event.details["dropped"]) == 6
    assert event.details["written"] == ["grader assertion-set-similar"]
    # Its similarity check compares embeddings from the endpoint the importer names.
    grader = Grader.objects.get(slug="assertion-set-similar")
    assert (grader.kind, grader.config["embedding_endpoint"], grader.config["embedding_model"]) == (
        "assertion_set",
        "embeddings",
        "text-embedding-3-small",
    )


def test_graders_are_created_once_and_reused_by_later_imports(importer):
    make_grader("team-contains", kind="contains")  # the default contains grader exists already

    run_import(make_dataset(owner=importer), BASIC, "--as", "importer")
    run_import(make_dataset(owner=importer), BASIC, "--as", "importer")

    slugs = set(Grader.objects.values_list("slug", flat=True))
    assert slugs == {
        "team-contains",
        "contains-all",
        "contains-any",
        "starts-with",
        "is-json",
        "equals",
        "regex",
    }
    equals = Grader.objects.get(slug="equals")
    assert (equals.kind, equals.config) == ("equals", get_kind("equals").validate_config({}))
    assert Grader.history.filter(slug="equals").count() == 1


def test_someone_who_may_not_add_graders_cannot_bring_them_in_through_an_import(dataset_owner):
    dataset = make_dataset(owner=dataset_owner)

    with pytest.raises(CommandError) as failed:
        run_import(dataset, BASIC, "--as", dataset_owner.username)

    assert (
        "graders: the cases need a grader 'equals' (equals) and you may not add graders: ask a rubric "
        "owner to import them, or to add it first"
    ) in str(failed.value)
    assert written() == (0, 0, 0, 0)


def test_with_the_graders_in_place_a_dataset_owner_imports_the_same_file(dataset_owner, importer):
    run_import(make_dataset(owner=importer), BASIC, "--as", "importer")  # a rubric owner brought them

    run_import(make_dataset(owner=dataset_owner), BASIC, "--as", dataset_owner.username)

    assert Case.objects.count() == 6 and Grader.objects.count() == 6


def test_a_grader_slug_taken_by_another_check_is_a_conflict_not_a_silent_reuse(importer):
    make_grader("equals", kind="exact_match")  # normalised: not promptfoo's character-for-character equals

    with pytest.raises(CommandError) as failed:
        run_import(make_dataset(owner=importer), BASIC, "--as", "importer")

    assert "graders: a grader 'equals' exists with another kind or config" in str(failed.value)
    assert Case.objects.count() == 0


def test_the_admin_import_form_holds_the_same_rule(client, dataset_owner):
    dataset = make_dataset(owner=dataset_owner)
    client.force_login(dataset_owner)
    data = b"- vars: {prompt: hi}\n  assert: [{type: equals, value: hello}]\n"
    url = reverse("admin:datasets_app_dataset_import", args=[dataset.pk])

    response = client.post(url, {"file": SimpleUploadedFile("t.yaml", data), "format": "promptfoo"})

    assert [str(e) for e in response.context["errors"]] == [
        "graders: the cases need a grader 'equals' (equals) and you may not add graders: ask a rubric "
        "owner to import them, or to add it first"
    ]
    confirm = client.post(
        url, {"payload": response.context["payload"], "format": "promptfoo", "confirmed": "yes"}
    )
    assert confirm.status_code == 200 and written() == (0, 0, 0, 0)


def test_admin_import_shows_what_is_not_carried_and_imports_it_only_when_allowed(client, importer):
    dataset = make_dataset(owner=importer)
    client.force_login(importer)
    url = reverse("admin:datasets_app_dataset_import", args=[dataset.pk])
    data = (
        b"- vars: {prompt: hi}\n  assert: [{type: icontains, value: hi}, {type: javascript, value: 'true'}]\n"
    )

    refused = client.post(url, {"file": SimpleUploadedFile("t.yaml", data), "format": "promptfoo"})
    assert [str(e) for e in refused.context["errors"]] == [
        "line 2: assert javascript: not carried: it runs JavaScript, Python or a webhook, and no "
        "foreign code is run"
    ]
    preview = client.post(
        url, {"file": SimpleUploadedFile("t.yaml", data), "format": "promptfoo", "allow_lossy": "on"}
    )
    assert [str(d) for d in preview.context["dropped"]] == [
        "line 2: assert javascript: it runs JavaScript, Python or a webhook, and no foreign code is run"
    ]
    client.post(
        url, {**preview.context["options"], "payload": preview.context["payload"], "confirmed": "yes"}
    )
    assert Case.objects.get(dataset=dataset).expected == {
        "contains_all": {"value": ["hi"], "case_sensitive": False, "case_mapping": "lowercase"}
    }


def test_judge_assertions_arrive_as_draft_rubrics_and_rate_limits_as_rules_of_the_gate(
    importer, rubric_owner
):
    dataset = make_dataset(owner=importer)
    gate = make_gate(dataset, owner=importer)
    make_endpoint("http://127.0.0.1:9/v1", name="judge")

    out = run_import(
        dataset,
        JUDGES,
        "--as",
        "importer",
        "--judge-endpoint",
        "judge",
        "--judge-model",
        "judge-model",
        "--rubric-owner",
        rubric_owner.username,
    )

    assert "Imported 2 case(s)" in out
    versions = RubricVersion.objects.select_related("rubric").order_by("rubric__slug")
    assert [(v.rubric.slug, v.state, v.author, v.rubric.owner, v.pass_threshold) for v in versions] == [
        ("promptfoo-closedqa", RubricState.DRAFT, importer, rubric_owner, 0.0),
        ("promptfoo-llm-rubric", RubricState.DRAFT, importer, rubric_owner, 0.0),
        ("promptfoo-llm-rubric-min-80", RubricState.DRAFT, importer, rubric_owner, 0.8),
    ]
    judge = Grader.objects.get(slug="promptfoo-llm-rubric-min-80")
    assert (judge.kind, judge.config["expected_field"], judge.rubric.slug) == (
        "llm_judge",
        "llm_rubric@0.8",
        "promptfoo-llm-rubric-min-80",
    )
    rules = [(r.name, r.metric, r.threshold, r.scope, r.severity) for r in gate.rules.order_by("position")]
    assert rules == [
        (
            "promptfoo latency <= 3000 ms",
            "latency_p95_ms",
            3000.0,
            {"tags": ["promptfoo-latency-3000"]},
            "block",
        ),
        (
            "promptfoo cost <= 0.002 USD",
            "cost_per_case_usd",
            0.002,
            {"tags": ["promptfoo-cost-0.002"]},
            "block",
        ),
    ]


def test_judge_assertions_without_a_judge_are_refused_naming_what_to_give(importer):
    dataset = make_dataset(owner=importer)
    make_gate(dataset, owner=importer)

    with pytest.raises(CommandError) as failed:
        run_import(dataset, JUDGES, "--as", "importer")

    assert (
        "rubrics: judge assertions need a judge for their rubric drafts (promptfoo-llm-rubric, "
        "promptfoo-closedqa, promptfoo-llm-rubric-min-80): give --judge-endpoint and --judge-model"
    ) in str(failed.value)
    assert written() == (0, 0, 0, 0) and Rubric.objects.count() == 0


def test_only_an_owner_of_the_gate_adds_its_rules(importer):
    dataset = make_dataset(owner=importer)
    gate = make_gate(dataset)  # owned by someone else
    make_endpoint("http://127.0.0.1:9/v1", name="judge")

    with pytest.raises(CommandError) as failed:
        run_import(dataset, JUDGES, "--as", "importer", "--judge-endpoint", "judge", "--judge-model", "m")

    assert f"rules: only an owner of gate '{gate.slug}' adds its rules" in str(failed.value)
    assert written() == (0, 0, 0, 0)
