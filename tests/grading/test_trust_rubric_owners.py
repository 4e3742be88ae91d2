"""Issue 10, finding 7: a rubric may have several owners; any owner but the author signs off,
and a version nobody can sign off says so, with who could, on its page and in the API."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from grading_app import services
from grading_app.models import Rubric
from tests.factories import make_endpoint, make_token, make_user

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def rubric(rubric_owner):
    return services.save_rubric(slug="tone", name="Tone", owner=rubric_owner, actor=rubric_owner)


def owners_version(rubric):
    version = services.create_rubric_version(
        rubric,
        actor=rubric.owner,
        criteria="Polite and brief.",
        endpoint=make_endpoint("http://127.0.0.1:9/v1"),
        model="j",
    )
    return services.submit_rubric_version(version, actor=rubric.owner)


def test_a_version_by_the_only_owner_says_nobody_can_sign_it_off(client, api_client, rubric):
    version = owners_version(rubric)

    with pytest.raises(PermissionDenied, match="nobody yet: add a co-owner"):
        services.approve_rubric_version(version, actor=rubric.owner)

    assert "its author rubric_owner is the rubric's only owner" in services.sign_off_blocker(version)
    client.force_login(rubric.owner)
    page = client.get(reverse("admin:grading_app_rubricversion_change", args=[version.pk])).content.decode()
    assert "Nobody can sign this version off" in page
    body = api_client.get("/api/v1/rubrics/", **bearer(make_token([], user=rubric.owner))).json()
    (listed,) = body["results"]
    assert listed["versions"][0]["can_be_signed_off_by"] == []
    assert "Add a co-owner" in listed["versions"][0]["sign_off_blocked"]


def test_a_co_owner_signs_off_the_owners_version(api_client, rubric):
    version = owners_version(rubric)
    co_owner = make_user("co-owner", roles=("Rubric owner",))
    services.save_rubric(
        slug="tone", name="Tone", owner=rubric.owner, co_owners=[co_owner], actor=rubric.owner
    )

    body = api_client.get("/api/v1/rubrics/", **bearer(make_token([], user=co_owner))).json()
    assert body["results"][0]["co_owners"] == ["co-owner"]
    assert body["results"][0]["versions"][0]["can_be_signed_off_by"] == ["co-owner"]
    approved = services.approve_rubric_version(version, actor=co_owner)
    assert approved.state == "approved"


def test_a_co_owner_never_signs_off_their_own_version(rubric):
    co_owner = make_user("co-owner", roles=("Rubric owner",))
    services.save_rubric(
        slug="tone", name="Tone", owner=rubric.owner, co_owners=[co_owner], actor=rubric.owner
    )
    version = services.create_rubric_version(
        rubric, actor=co_owner, criteria="Brief.", endpoint=make_endpoint("http://127.0.0.1:9/v1"), model="j"
    )
    version = services.submit_rubric_version(version, actor=co_owner)

    with pytest.raises(PermissionDenied):
        services.approve_rubric_version(version, actor=co_owner)
    assert services.approve_rubric_version(version, actor=rubric.owner).state == "approved"


def test_only_an_owner_changes_who_owns_a_rubric(client, rubric):
    outsider = make_user("outsider", roles=("Rubric owner",), is_staff=True)

    with pytest.raises(PermissionDenied):
        services.save_rubric(
            slug="tone", name="Tone", owner=rubric.owner, co_owners=[outsider], actor=outsider
        )

    client.force_login(outsider)
    url = reverse("admin:grading_app_rubric_change", args=[rubric.pk])
    response = client.post(
        url, {"slug": "tone", "name": "Tone", "owner": outsider.pk, "co_owners": [outsider.pk]}
    )
    assert response.status_code == 403
    rubric = Rubric.objects.get(pk=rubric.pk)
    assert (rubric.owner.username, list(rubric.co_owners.all())) == ("rubric_owner", [])


def test_deploy_tokens_do_not_read_rubrics(api_client, rubric):
    from tests.factories import make_dataset, make_gate

    secret = make_token([make_gate(make_dataset())])
    assert api_client.get("/api/v1/rubrics/", **bearer(secret)).status_code == 403
