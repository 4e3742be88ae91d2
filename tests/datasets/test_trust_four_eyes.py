"""Issue 10, finding 4: four eyes without gaps.

A token's case writes belong to whoever issued it; nobody who changed a case's content since
its last audit audits it; a config's trusted cases name their contributor and the applying
user must be someone else, otherwise they arrive in review.
"""

from io import StringIO

import pytest
import yaml
from django.core.exceptions import PermissionDenied
from django.core.management import call_command

from datasets_app import services
from datasets_app.models import Case
from gates_app.tokens import create_token
from tests.factories import make_case, make_dataset, make_failure_class, make_gate, make_user

pytestmark = pytest.mark.django_db

QUESTION = {"messages": [{"role": "user", "content": "Can I get a refund after 40 days?"}]}


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def post_cases(api_client, secret, cases):
    return api_client.post(
        "/api/v1/datasets/support/cases/",
        {"cases": cases, "failure_class": "factual"},
        format="json",
        **bearer(secret),
    )


@pytest.fixture
def gate():
    make_failure_class("factual")
    owner = make_user("gate-boss", roles=("Gate owner", "Reviewer"))
    return make_gate(make_dataset("support"), "release", owner=owner)


def test_a_token_holder_cannot_audit_the_cases_their_token_wrote(api_client, gate):
    owner = gate.owner
    secret = create_token(name="ci", gates=[gate], scopes=["cases:write"], actor=owner)[1]

    response = post_cases(api_client, secret, [{"key": "t1", "tier": "trusted", "input": QUESTION}])

    assert response.status_code == 201, response.content
    case = Case.objects.get(key="t1")
    assert case.contributed_by == owner
    with pytest.raises(PermissionDenied, match="other than its contributor"):
        services.audit_case(case, actor=owner)
    reviewer = make_user("someone-else", roles=("Reviewer",))
    assert services.audit_case(case, actor=reviewer).status == "active"


def test_a_token_issued_from_the_shell_writes_no_cases(api_client, gate):
    secret = create_token(name="ci", gates=[gate], scopes=["cases:write"], actor=None)[1]

    response = post_cases(api_client, secret, [{"key": "t1", "tier": "trusted", "input": QUESTION}])

    assert response.status_code == 403
    assert "--as" in response.json()["error"]["message"]
    assert not Case.objects.filter(key="t1").exists()


def test_nobody_who_changed_the_content_since_the_last_audit_may_audit(expert):
    dataset = make_dataset("support")
    first_editor = make_user("first-editor", roles=("Reviewer",))
    second_editor = make_user("second-editor", roles=("Reviewer",))
    fresh_eyes = make_user("fresh-eyes", roles=("Reviewer",))
    case = make_case(dataset, "t1", contributor=expert, auditor=fresh_eyes)

    case = services.edit_case(case, actor=first_editor, expected={"answer": "No."})
    case = services.edit_case(case, actor=second_editor, expected={"answer": "No, after 30 days."})
    assert case.status == "in_review"

    # The last editor was excluded before; now everyone since the last audit is.
    with pytest.raises(PermissionDenied, match="changed this case's content"):
        services.audit_case(case, actor=first_editor)
    with pytest.raises(PermissionDenied, match="changed this case's content"):
        services.audit_case(case, actor=second_editor)
    case = services.audit_case(case, actor=fresh_eyes, reason="matches the 30-day policy")
    assert (case.status, case.audited_by, case.editors_since_audit) == ("active", fresh_eyes, [])

    # An audit starts a new round: the earlier editors may audit later changes by others.
    case = services.edit_case(case, actor=second_editor, tags=["refunds"])
    assert services.audit_case(case, actor=first_editor).audited_by == first_editor


def test_a_promotion_to_trusted_is_refused_to_an_editor_since_the_last_audit(expert):
    dataset = make_dataset("support")
    editor = make_user("editor", roles=("Reviewer",))
    case = make_case(dataset, "m1", tier="monitoring", contributor=expert)

    case = services.edit_case(case, actor=editor, expected={"answer": "No."})
    assert case.status == "active"  # a monitoring case keeps counting while it changes

    with pytest.raises(PermissionDenied, match="changed this case's content"):
        services.promote_case(case, actor=editor)
    promoted = services.promote_case(case, actor=make_user(roles=("Reviewer",)), reason="well sourced")
    assert (promoted.tier, promoted.editors_since_audit) == ("trusted", [])


def _config(tmp_path, cases):
    data = {
        "failure_classes": [{"slug": "factual", "name": "Factual"}],
        "datasets": [{"slug": "support", "name": "Support", "cases": cases}],
    }
    path = tmp_path / "evals.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _case(key, **extra):
    return {"key": key, "tier": "trusted", "failure_class": "factual", "input": QUESTION, **extra}


def test_trusted_cases_a_config_declares_are_audited_only_by_someone_other_than_their_contributor(tmp_path):
    bob = make_user("bob", roles=("Dataset owner",))
    make_user("alice", roles=("Domain expert",))
    path = _config(
        tmp_path,
        [
            _case("by-alice", contributed_by="alice"),
            _case("by-bob", contributed_by="bob"),  # bob would audit his own case
            _case("nobody"),  # no contributor named: nothing for a second person to be
            {**_case("wide", contributed_by="bob"), "tier": "monitoring"},
        ],
    )

    out = StringIO()
    call_command("apply_config", str(path), "--as", "bob", stdout=out)

    cases = {c.key: c for c in Case.objects.all()}
    assert {k: (c.status, c.audited_by_id is not None) for k, c in cases.items()} == {
        "by-alice": ("active", True),
        "by-bob": ("in_review", False),
        "nobody": ("in_review", False),
        "wide": ("active", True),  # four eyes are the trusted tier's rule
    }
    assert cases["by-alice"].contributed_by.username == "alice"
    assert "2 trusted case(s) in support arrive in review" in out.getvalue()

    # bob applied them, so he counts as having changed them: he cannot audit them in the admin.
    with pytest.raises(PermissionDenied):
        services.audit_case(cases["nobody"], actor=bob)
    other = make_user("carol", roles=("Reviewer",))
    assert services.audit_case(cases["nobody"], actor=other).status == "active"


def test_reapplying_a_config_as_someone_else_audits_the_cases_waiting_in_review(tmp_path):
    make_user("bob", roles=("Dataset owner",))
    make_user("dora", roles=("Dataset owner",))
    path = _config(tmp_path, [_case("by-bob", contributed_by="bob")])
    call_command("apply_config", str(path), "--as", "bob", stdout=StringIO())
    assert Case.objects.get().status == "in_review"

    call_command("apply_config", str(path), "--as", "dora", stdout=StringIO())

    case = Case.objects.get()
    assert (case.status, case.audited_by.username) == ("active", "dora")
