"""Issue 10, finding 1: nobody acts through a token in someone else's name.

Personal tokens only for oneself (a superuser may issue one for someone else, recorded);
deploy tokens only for gates one owns; a gate owner sees and revokes only their gates'
tokens; issuing and revoking record who and why.
"""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit_app.models import AuditEvent
from gates_app.models import DeployToken
from gates_app.services import request_check
from gates_app.tokens import create_token, revoke_token
from tests.factories import make_scenario, make_token, make_user, outputs_for

pytestmark = pytest.mark.django_db

ADD = "admin:gates_app_deploytoken_add"
CHANGELIST = "admin:gates_app_deploytoken_changelist"


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def scenario(django_capture_on_commit_callbacks):
    """A gate owned by ``owner`` with a failed check waiting for an override."""
    s = make_scenario()
    s["owner"].is_staff = True
    s["owner"].save()
    s["owner"].groups.add(Group.objects.get(name="Gate owner"))

    with django_capture_on_commit_callbacks(execute=True):
        check, _ = request_check(gate=s["gate"], candidate="v1", outputs=outputs_for(s["cases"], "Yes"))
    check.refresh_from_db()
    assert check.verdict == "fail"
    s["check"] = check
    return s


@pytest.fixture
def mallory(db):
    """In the Gate owner group, owner of no gate: the impersonator of finding 1."""
    return make_user("mallory", roles=("Gate owner",), is_staff=True)


def issue(client, **fields):
    data = {"kind": "personal", "name": "laptop", "note": "for the CLI", **fields}
    return client.post(reverse(ADD), data)


def test_the_admin_form_cannot_issue_a_personal_token_for_another_user(client, scenario, mallory, api_client):
    client.force_login(mallory)
    owner = scenario["owner"]

    # The bypass as found: the old form took any user id in "user".
    response = issue(client, user=owner.pk, for_user=owner.pk)

    assert response.status_code == 302  # issued, but only in mallory's own name
    assert not DeployToken.objects.filter(user=owner).exists()
    token = DeployToken.objects.get()
    assert (token.user, token.created_by) == (mallory, mallory)
    secret = next(m.message for m in response.wsgi_request._messages).rsplit(" ", 1)[1]
    override = api_client.post(
        f"/api/v1/checks/{scenario['check'].pk}/override/",
        {"reason": "ship it"},
        format="json",
        **bearer(secret),
    )
    assert override.status_code == 403
    scenario["check"].refresh_from_db()
    assert scenario["check"].release_allowed is False


def test_the_service_refuses_a_personal_token_for_someone_else_and_the_command_as_too(scenario, mallory):
    with pytest.raises(PermissionDenied):
        create_token(name="impersonate", user=scenario["owner"], actor=mallory)
    with pytest.raises(CommandError, match="only they"):
        call_command("create_token", "impersonate", "--user", scenario["owner"].username, "--as", "mallory")
    assert not DeployToken.objects.exists()
    assert not AuditEvent.objects.filter(action="token.created").exists()


def test_a_superuser_may_issue_a_personal_token_for_someone_else_and_it_is_recorded(client, scenario):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)

    response = issue(client, for_user=scenario["owner"].pk, note="owner lost their laptop")

    assert response.status_code == 302
    token = DeployToken.objects.get()
    assert (token.user, token.created_by) == (scenario["owner"], admin)
    event = AuditEvent.objects.get(action="token.created")
    assert (event.actor, event.reason) == (admin, "owner lost their laptop")
    assert event.details["on_behalf"] is True
    assert event.details["for_user"] == scenario["owner"].username


def test_a_deploy_token_is_only_for_gates_one_owns(client, scenario, mallory):
    client.force_login(mallory)

    # A raw gate id of someone else's gate in the POST: the form does not offer it.
    response = issue(client, kind="deploy", gates=[scenario["gate"].pk])

    assert response.status_code == 200
    assert "gates" in response.context["adminform"].form.errors
    assert not DeployToken.objects.exists()
    with pytest.raises(PermissionDenied, match="do not own"):
        create_token(name="ci", gates=[scenario["gate"]], actor=mallory)


def test_a_co_owner_issues_deploy_tokens_for_the_gate(scenario, mallory):
    scenario["gate"].co_owners.add(mallory)

    token, _ = create_token(name="ci", gates=[scenario["gate"]], actor=mallory, note="the new pipeline")

    assert token.created_by == mallory
    assert list(token.gates.all()) == [scenario["gate"]]


def test_a_gate_owner_sees_and_revokes_only_their_gates_tokens(client, scenario, mallory):
    theirs = make_token([scenario["gate"]])  # issued by the gate's owner
    token = DeployToken.objects.get()
    client.force_login(mallory)

    listing = client.get(reverse(CHANGELIST))
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == []

    # A raw id in the action POST: the token is outside mallory's queryset, so nothing happens.
    client.post(
        reverse(CHANGELIST),
        {"action": "revoke", "_selected_action": [token.pk], "confirmed": "yes", "reason": "mine now"},
    )
    token.refresh_from_db()
    assert token.revoked_at is None
    with pytest.raises(PermissionDenied):
        revoke_token(token, actor=mallory, reason="mine now")
    assert theirs


def test_revoking_records_who_and_why(client, scenario):
    make_token([scenario["gate"]])
    token = DeployToken.objects.get()
    owner = scenario["owner"]
    client.force_login(owner)

    asked = client.post(reverse(CHANGELIST), {"action": "revoke", "_selected_action": [token.pk]})
    assert asked.status_code == 200  # the confirmation page asks for the reason
    without_reason = client.post(
        reverse(CHANGELIST), {"action": "revoke", "_selected_action": [token.pk], "confirmed": "yes"}
    )
    assert without_reason.status_code == 200
    client.post(
        reverse(CHANGELIST),
        {"action": "revoke", "_selected_action": [token.pk], "confirmed": "yes", "reason": "leaked in a log"},
    )

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert (token.revoked_by, token.revoke_reason) == (owner, "leaked in a log")
    event = AuditEvent.objects.get(action="token.revoked")
    assert (event.actor, event.reason, event.details["token"]["prefix"]) == (
        owner,
        "leaked in a log",
        token.prefix,
    )
    with pytest.raises(ValidationError):
        revoke_token(token, actor=owner, reason="again")


def test_a_user_revokes_their_own_personal_token(mallory):
    token, _ = create_token(name="laptop", user=mallory, actor=mallory)

    revoke_token(token, actor=mallory, reason="new laptop")

    token.refresh_from_db()
    assert token.revoked_by == mallory
