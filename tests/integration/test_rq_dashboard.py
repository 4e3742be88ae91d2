"""Issue 12: the RQ dashboard README advertises works, for superusers only."""

from django.urls import reverse

from tests.factories import make_user


def test_the_rq_dashboard_answers_superusers_and_no_one_else(client, redis_url, transactional_db):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    page = client.get("/admin/rq/")
    assert page.status_code == 200, page.content[:500]
    assert b"default" in page.content  # the queue is listed
    assert client.get(reverse("django_rq:home_json")).status_code == 200

    client.force_login(make_user("staff", is_staff=True))
    assert client.get("/admin/rq/").status_code == 302  # to the login page
    assert client.get(reverse("django_rq:home_json")).status_code == 302
