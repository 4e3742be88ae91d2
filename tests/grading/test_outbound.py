"""Outbound model calls: one client factory, explicit timeouts, no redirects, an optional host allowlist."""

import pytest
from django.core.exceptions import ValidationError

from grading_app import llm
from grading_app.models import Endpoint
from tests.factories import make_endpoint
from tests.fake_openai import json_reply

pytestmark = pytest.mark.django_db


def test_an_endpoint_outside_the_allowlist_cannot_be_saved(settings):
    settings.EVALGATE_ALLOWED_ENDPOINT_HOSTS = ["judge.internal.example"]
    with pytest.raises(ValidationError, match="not in EVALGATE_ALLOWED_ENDPOINT_HOSTS"):
        make_endpoint("http://169.254.169.254/v1")
    assert not Endpoint.objects.exists()


def test_a_worker_refuses_to_call_an_endpoint_the_allowlist_no_longer_allows(settings, fake_openai):
    endpoint = make_endpoint(fake_openai.base_url)
    fake_openai.default(json_reply({"score": 1, "passed": True, "rationale": "ok"}))
    assert llm.judge(endpoint, "judge", "prompt").passed is True
    settings.EVALGATE_ALLOWED_ENDPOINT_HOSTS = ["judge.internal.example"]
    with pytest.raises(llm.JudgeError, match="not in EVALGATE_ALLOWED_ENDPOINT_HOSTS"):
        llm.judge(endpoint, "judge", "prompt")  # a grade error, never a pass
    assert fake_openai.calls == 1  # the refused call never left the process


def test_clients_have_explicit_timeouts_and_do_not_follow_redirects(fake_openai):
    endpoint = make_endpoint(fake_openai.base_url, timeout_s=7)
    client = llm.client_for(endpoint)
    assert client.timeout == 7
    assert client.max_retries == endpoint.max_retries
    assert client._client.follow_redirects is False
