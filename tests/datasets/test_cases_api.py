"""POST /api/v1/datasets/{slug}/cases/: bulk draft cases with the importer's validation."""

import pytest

from datasets_app.models import UNCLASSIFIED, Case, FailureClass
from gates_app.models import Gate
from gates_app.tokens import create_token
from tests.factories import make_case, make_dataset, make_failure_class, make_gate, make_token

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def item(key: str, **fields) -> dict:
    return {"key": key, "input": {"messages": [{"role": "user", "content": f"Question {key}?"}]}, **fields}


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def snapshot() -> tuple[int, int, int]:
    return Case.objects.count(), Case.history.count(), FailureClass.objects.count()


@pytest.fixture
def factual():
    return make_failure_class("factual")


@pytest.fixture
def dataset(factual):
    dataset = make_dataset("support-bot")
    make_case(dataset, "existing-01", failure_class=factual)
    return dataset


@pytest.fixture
def gate(dataset):
    return make_gate(dataset, "support-release")


@pytest.fixture
def secret(gate):
    return make_token([gate], scopes=["cases:write"])


def post_cases(client, slug: str, secret: str, body: dict):
    return client.post(f"/api/v1/datasets/{slug}/cases/", body, format="json", **bearer(secret))


def test_deploy_token_with_cases_write_adds_monitoring_drafts(api_client, dataset, secret, factual):
    body = {"cases": [item("a", failure_class="factual"), item("b", failure_class="factual", tier="trusted")]}

    response = post_cases(api_client, dataset.slug, secret, body)

    assert response.status_code == 201, response.content
    assert response.json() == {"created": 2, "keys": ["a", "b"]}
    a, b = Case.objects.filter(dataset=dataset, key__in=["a", "b"]).order_by("key")
    assert (a.tier, a.status, a.source, a.failure_class) == ("monitoring", "draft", "imported", factual)
    assert (b.tier, b.status) == ("trusted", "draft")
    # A deploy token acts as no user, but its writes belong to whoever issued it.
    assert a.contributed_by == b.contributed_by == Gate.objects.get(slug="support-release").owner
    assert Case.history.filter(key__in=["a", "b"], history_type="+").count() == 2


def test_cases_without_a_failure_class_take_the_given_one_or_unclassified(api_client, dataset, secret):
    safety = make_failure_class("safety")

    response = post_cases(api_client, dataset.slug, secret, {"cases": [item("a")], "failure_class": "safety"})
    assert response.status_code == 201, response.content
    assert Case.objects.get(dataset=dataset, key="a").failure_class == safety

    response = post_cases(api_client, dataset.slug, secret, {"cases": [item("b")]})
    assert response.status_code == 201, response.content
    assert Case.objects.get(dataset=dataset, key="b").failure_class.slug == UNCLASSIFIED


def test_draft_status_may_be_given_explicitly(api_client, dataset, secret):
    response = post_cases(api_client, dataset.slug, secret, {"cases": [item("a", status="draft")]})

    assert response.status_code == 201, response.content
    assert Case.objects.get(dataset=dataset, key="a").status == "draft"


BAD_CASES = {
    "missing key": ([item("a"), {"input": {"vars": {"q": 1}}}], "cases[1].key", "missing key"),
    "missing input": ([item("a"), {"key": "b"}], "cases[1].input", "missing input"),
    "wrong tier": ([item("a"), item("b", tier="gold")], "cases[1].tier", "'gold' is not a valid tier"),
    "unknown failure class": (
        [item("a"), item("b", failure_class="no-such-class")],
        "cases[1].failure_class",
        "unknown failure class 'no-such-class'",
    ),
    "duplicate key": ([item("a"), item("b"), item("a")], "cases[2].key", "duplicate key 'a'"),
    "key already in the dataset": (
        [item("a"), item("existing-01")],
        "cases[1].key",
        "a case 'existing-01' already exists in support-bot",
    ),
    "unknown field": ([item("a", colour="red")], "cases[0].fields", "unknown field(s): colour"),
    "expected of the wrong type": (
        [item("a", expected={"must_refuse": "no"})],
        "cases[0].expected",
        "expected.must_refuse must be true or false",
    ),
    "active status": ([item("a"), item("b", status="active")], "cases[1].status", "The API adds drafts"),
    "in_review status": ([item("a", status="in_review")], "cases[0].status", "The API adds drafts"),
}


@pytest.mark.parametrize(("cases", "where", "problem"), BAD_CASES.values(), ids=BAD_CASES.keys())
def test_an_invalid_case_is_a_400_naming_its_index_and_field_and_writes_nothing(
    api_client, dataset, secret, cases, where, problem
):
    before = snapshot()

    response = post_cases(api_client, dataset.slug, secret, {"cases": cases})

    error = assert_error_shape(response, 400, "invalid")
    assert where in error["details"], error["details"]
    assert any(problem in message for message in error["details"][where]), error["details"]
    assert snapshot() == before


def test_every_invalid_case_is_named_in_one_response(api_client, dataset, secret):
    cases = [item("a"), item("b", tier="gold"), {"input": {"vars": {}}}, item("a", risk="extreme")]

    response = post_cases(api_client, dataset.slug, secret, {"cases": cases})

    error = assert_error_shape(response, 400, "invalid")
    assert set(error["details"]) == {"cases[1].tier", "cases[2].key", "cases[3].key", "cases[3].risk"}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"cases": []}, "cases"),
        ({}, "cases"),
        ({"cases": [item("a")], "failure_class": "no-such-class"}, "failure_class"),
    ],
    ids=["empty list", "no cases", "unknown fallback failure class"],
)
def test_a_malformed_request_is_a_400_and_writes_nothing(api_client, dataset, secret, body, where):
    before = snapshot()

    response = post_cases(api_client, dataset.slug, secret, body)

    error = assert_error_shape(response, 400, "invalid")
    assert where in error["details"]
    assert snapshot() == before


def test_a_deploy_token_without_cases_write_is_forbidden(api_client, dataset, gate):
    secret = make_token([gate], scopes=["checks:write", "incidents:write"])
    before = snapshot()

    response = post_cases(api_client, dataset.slug, secret, {"cases": [item("a")]})

    error = assert_error_shape(response, 403, "forbidden")
    assert "cases:write" in error["message"]
    assert snapshot() == before


def test_a_token_for_another_gates_dataset_gets_404(api_client, dataset, factual):
    other_dataset = make_dataset("other-bot")
    other_gate = make_gate(other_dataset, "other-release")
    secret = make_token([other_gate], scopes=["cases:write"])
    before = snapshot()

    response = post_cases(api_client, dataset.slug, secret, {"cases": [item("a")]})

    assert_error_shape(response, 404, "not_found")
    assert snapshot() == before
    # The same token does reach its own gate's dataset.
    assert post_cases(api_client, other_dataset.slug, secret, {"cases": [item("a")]}).status_code == 201


def test_an_unknown_dataset_is_a_404(api_client, dataset, secret):
    assert_error_shape(post_cases(api_client, "nope", secret, {"cases": [item("a")]}), 404, "not_found")


def test_no_credentials_is_a_401_and_writes_nothing(api_client, dataset):
    before = snapshot()

    response = api_client.post(
        f"/api/v1/datasets/{dataset.slug}/cases/", {"cases": [item("a")]}, format="json"
    )

    assert_error_shape(response, 401, "unauthenticated")
    assert snapshot() == before


def test_a_personal_token_imports_as_its_user(api_client, dataset, dataset_owner):
    _, secret = create_token(name="mine", user=dataset_owner, actor=dataset_owner)

    response = post_cases(api_client, dataset.slug, secret, {"cases": [item("a", failure_class="factual")]})

    assert response.status_code == 201, response.content
    case = Case.objects.get(dataset=dataset, key="a")
    assert (case.status, case.contributed_by) == ("draft", dataset_owner)
    assert case.history.get().history_user == dataset_owner


def test_a_personal_token_of_a_user_without_import_permission_is_forbidden(api_client, dataset, approver):
    _, secret = create_token(name="mine", user=approver, actor=approver)
    before = snapshot()

    response = post_cases(api_client, dataset.slug, secret, {"cases": [item("a", failure_class="factual")]})

    assert_error_shape(response, 403, "forbidden")
    assert snapshot() == before
