"""The case form's JSON boxes: empty (or {} and []) on the add page, never `null`; pretty once saved."""

import html
import json
import re

import pytest
from django.urls import reverse

from datasets_app import services
from datasets_app.choices import Severity
from tests.factories import make_case, make_dataset, make_failure_class

pytestmark = pytest.mark.django_db

ADD = reverse("admin:datasets_app_case_add")
QUESTION = {"messages": [{"role": "user", "content": "Kann ich nach 40 Tagen zurückgeben?"}]}


def boxes(response) -> dict[str, str]:
    """What each textarea of the page holds, as the browser shows it."""
    found = re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', response.content.decode(), re.S)
    # Django writes a newline after the opening tag, which browsers drop.
    return {name: html.unescape(value.removeprefix("\n")) for name, value in found}


def test_the_add_form_has_no_null_in_its_json_boxes(client, expert):
    client.force_login(expert)

    shown = boxes(client.get(ADD))

    assert shown["input"] == ""  # the user message fills it; {} would not be a valid input
    assert shown["expected"] == "{}"
    assert shown["tags"] == "[]"
    assert "null" not in "".join(shown.values())


def test_the_add_form_shown_again_after_an_error_has_no_null(client, expert):
    client.force_login(expert)
    dataset, failure_class = make_dataset(), make_failure_class()
    # A browser that sends no JSON boxes at all (they were left out of the page, say).
    response = client.post(
        ADD, {"dataset": dataset.pk, "key": "", "failure_class": failure_class.pk, "tier": "monitoring"}
    )

    assert response.status_code == 200  # the form again, with its errors
    assert response.context["adminform"].form.errors
    assert "null" not in "".join(boxes(response).values())


def test_the_change_form_shows_the_saved_json_pretty_printed(client, expert):
    client.force_login(expert)
    case = make_case(
        make_dataset(),
        "refund-40",
        failure_class=make_failure_class(),
        expected={"answer": "Nein", "contains": ["40 Tage"], "must_refuse": False},
        tags=["refunds", "eu"],
    )
    case.input = QUESTION
    case.save()

    page = client.get(reverse("admin:datasets_app_case_change", args=[case.pk]))
    shown = boxes(page)

    assert shown["input"] == json.dumps(QUESTION, indent=2, ensure_ascii=False)
    assert shown["expected"] == json.dumps(case.expected, indent=2, ensure_ascii=False)
    assert '"must_refuse": false' in shown["expected"]
    assert "zurückgeben" in shown["input"]  # as written, not \u escapes
    assert shown["tags"] == '["refunds", "eu"]'  # a short list stays on one line
    tag = re.search(r'<textarea[^>]*name="input"[^>]*>', page.content.decode()).group(0)
    rows = int(re.search(r'rows="(\d+)"', tag).group(1))
    assert rows > shown["input"].count("\n")  # tall enough to show it whole


def test_invalid_json_is_shown_back_as_typed(client, expert):
    client.force_login(expert)
    dataset, failure_class = make_dataset(), make_failure_class()

    response = client.post(
        ADD,
        {
            "dataset": dataset.pk,
            "key": "k",
            "failure_class": failure_class.pk,
            "tier": "monitoring",
            "risk": "normal",
            "input": '{"messages": [',
            "expected": "",
            "tags": "",
        },
    )

    assert boxes(response)["input"] == '{"messages": ['


def test_the_incident_conversion_form_has_no_null_either(client, dataset_owner):
    client.force_login(dataset_owner)
    incident = services.report_incident(
        title="Refund promised", severity=Severity.HIGH, input=QUESTION, actor=None
    )

    shown = boxes(client.get(reverse("admin:datasets_app_incident_convert", args=[incident.pk])))

    assert shown["expected"] == ""
