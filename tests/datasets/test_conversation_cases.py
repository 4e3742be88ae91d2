"""Multi-turn cases are checked wherever a case is written (issue 14, item 7): the service, the
admin form, config files, imports and the cases API name each problem by its path and write
nothing."""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError
from django.urls import reverse

from datasets_app import services
from datasets_app.conversations import DEFAULT_MAX_TURNS, MAX_TURNS, Conversation, conversation_of
from datasets_app.importers import export_promptfoo
from datasets_app.models import Case
from datasets_app.services import validate_case_content
from grading_app.models.rubrics import SIMULATED_USER_PROMPT_TEMPLATE
from grading_app.services import save_rubric
from tests.datasets.test_apply_config import apply, config
from tests.datasets.test_apply_config import write as write_config
from tests.datasets.test_case_admin import ADD, add_form
from tests.datasets.test_cases_api import assert_error_shape, post_cases
from tests.datasets.test_import_cases import jsonl, run_import
from tests.datasets.test_import_cases import write as write_file
from tests.factories import (
    make_case,
    make_dataset,
    make_endpoint,
    make_failure_class,
    make_gate,
    make_rubric_version,
    make_token,
    make_user,
)

OPENING = [{"role": "system", "content": "You are Northwind's support bot."}]

GOOD = {
    "scripted": (
        {"turns": ["Hi", "Where is A-17?", "Refund it."]},
        Conversation(turns=("Hi", "Where is A-17?", "Refund it."), max_turns=3),
    ),
    "scripted in DeepEval's turn shape, after an opening": (
        {"messages": OPENING, "turns": [{"role": "user", "content": "Hi"}, {"content": "Refund it."}]},
        Conversation(opening=OPENING, turns=("Hi", "Refund it."), max_turns=2),
    ),
    "simulated, defaults": (
        {"simulated_user": {"rubric": "impatient-customer"}},
        Conversation(persona="impatient-customer", max_turns=DEFAULT_MAX_TURNS),
    ),
    "simulated, every key": (
        {
            "simulated_user": {
                "rubric": "impatient-customer",
                "scenario": "Parcel A-17 is lost.",
                "opening": "Where is my parcel?",
                "max_turns": MAX_TURNS,
            }
        },
        Conversation(
            persona="impatient-customer",
            scenario="Parcel A-17 is lost.",
            first_message="Where is my parcel?",
            max_turns=MAX_TURNS,
        ),
    ),
}


@pytest.mark.parametrize(("case_input", "conversation"), GOOD.values(), ids=GOOD.keys())
def test_a_well_formed_conversation_is_accepted_and_read(case_input, conversation):
    validate_case_content(case_input, {}, [])
    assert conversation_of(case_input) == conversation


def test_a_single_turn_case_is_no_conversation():
    assert conversation_of({"messages": OPENING}) is None


BAD = {
    "turns not a list": ({"turns": "Hi"}, "input.turns must be a non-empty list of the user's turns"),
    "no turns": ({"turns": []}, "input.turns must be a non-empty list"),
    "a turn that is a number": ({"turns": ["Hi", 7]}, "input.turns[1] must be text"),
    "an assistant turn": (
        {"turns": ["Hi", {"role": "assistant", "content": "Hello"}]},
        'input.turns[1] must be text (or {"role": "user", "content": text})',
    ),
    "an empty turn": ({"turns": ["Hi", "  "]}, "input.turns[1] is empty"),
    "too many turns": (
        {"turns": ["Hi"] * (MAX_TURNS + 1)},
        f"input.turns has 21 turns; a conversation takes at most {MAX_TURNS}",
    ),
    "both kinds": (
        {"turns": ["Hi"], "simulated_user": {"rubric": "p"}},
        "input: give turns (a scripted conversation) or simulated_user, not both",
    ),
    "simulated user not an object": ({"simulated_user": "dana"}, "input.simulated_user must be an object"),
    "no persona": ({"simulated_user": {"max_turns": 3}}, "input.simulated_user.rubric is required"),
    "persona not a slug": (
        {"simulated_user": {"rubric": "Dana the customer"}},
        "input.simulated_user.rubric is required",
    ),
    "turn limit zero": (
        {"simulated_user": {"rubric": "p", "max_turns": 0}},
        f"input.simulated_user.max_turns must be a whole number from 1 to {MAX_TURNS}, not 0",
    ),
    "turn limit too high": (
        {"simulated_user": {"rubric": "p", "max_turns": 500}},
        "input.simulated_user.max_turns must be a whole number from 1 to 20, not 500",
    ),
    "turn limit as text": ({"simulated_user": {"rubric": "p", "max_turns": "5"}}, "not '5'"),
    "turn limit as true": ({"simulated_user": {"rubric": "p", "max_turns": True}}, "not True"),
    "unknown key": (
        {"simulated_user": {"rubric": "p", "goal": "refund"}},
        "input.simulated_user.goal: unknown key (allowed: rubric, scenario, opening, max_turns)",
    ),
    "empty scenario": (
        {"simulated_user": {"rubric": "p", "scenario": ""}},
        "input.simulated_user.scenario must be text",
    ),
    "opening not text": (
        {"simulated_user": {"rubric": "p", "opening": ["Hi"]}},
        "input.simulated_user.opening must be text",
    ),
    "turn limit in the wrong place": (
        {"simulated_user": {"rubric": "p"}, "max_turns": 3},
        "input.max_turns: a turn limit belongs to the simulated user (input.simulated_user.max_turns)",
    ),
}


@pytest.mark.parametrize(("case_input", "problem"), BAD.values(), ids=BAD.keys())
def test_a_malformed_conversation_is_refused_naming_its_path(case_input, problem):
    with pytest.raises(ValidationError) as refused:
        validate_case_content(case_input, {}, [])
    assert any(problem in message for message in refused.value.message_dict["input"]), refused.value


def test_every_problem_of_a_conversation_is_named_at_once():
    with pytest.raises(ValidationError) as refused:
        validate_case_content({"simulated_user": {"max_turns": 99, "mood": "angry"}}, {}, [])
    problems = refused.value.message_dict["input"]
    assert len(problems) == 3
    assert [p.split(" ")[0] for p in problems] == [
        "input.simulated_user.mood:",
        "input.simulated_user.rubric",
        "input.simulated_user.max_turns",
    ]


@pytest.mark.django_db
def test_the_case_form_takes_a_conversation_and_shows_a_bad_one_on_the_input_box(client, expert):
    client.force_login(expert)
    dataset, failure_class = make_dataset(), make_failure_class()
    bad = {"turns": ["Hi", {"role": "assistant", "content": "Hello"}]}

    response = client.post(ADD, add_form(dataset, failure_class, user_message="", input=json.dumps(bad)))

    assert response.status_code == 200 and not Case.objects.exists()
    assert "input.turns[1] must be text" in " ".join(response.context["adminform"].form.errors["input"])

    good = {"turns": ["Hi", "Where is A-17?"]}
    client.post(ADD, add_form(dataset, failure_class, user_message="", input=json.dumps(good)))
    assert Case.objects.get().input == good


@pytest.mark.django_db
def test_a_config_names_the_case_and_the_conversation_key_and_applies_nothing(tmp_path):
    alice = make_user("alice", roles=("Dataset owner",))
    make_user("carol", roles=("Domain expert",))  # the config's contributor
    data = config()
    data["datasets"][0]["cases"][1]["input"] = {"simulated_user": {"rubric": "dana", "max_turns": 50}}

    with pytest.raises(CommandError) as failed:
        apply(write_config(tmp_path, data), alice)

    assert "datasets[0].cases[1].input: input.simulated_user.max_turns must be a whole number" in str(
        failed.value
    )
    assert not Case.objects.exists()


@pytest.mark.django_db
def test_an_import_names_the_line_and_the_conversation_key_and_imports_nothing(tmp_path, dataset_owner):
    dataset = make_dataset("support-bot", owner=dataset_owner)
    make_failure_class("factual")
    good = {"key": "a", "failure_class": "factual", "input": {"turns": ["Hi", "Refund it."]}}
    bad = {
        "key": "b",
        "failure_class": "factual",
        "input": {"turns": ["Hi"], "simulated_user": {"rubric": "p"}},
    }

    with pytest.raises(CommandError) as failed:
        run_import(dataset, write_file(tmp_path, jsonl(good, bad)), "--as", dataset_owner.username)

    assert "line 2: input: input: give turns (a scripted conversation) or simulated_user, not both" in str(
        failed.value
    )
    assert not Case.objects.filter(dataset=dataset).exists()


@pytest.mark.django_db
def test_the_cases_api_names_the_case_index_and_the_conversation_problem(api_client):
    dataset = make_dataset("support-bot")
    make_case(dataset, "existing-01", failure_class=make_failure_class("factual"))
    secret = make_token([make_gate(dataset, "support-release")], scopes=["cases:write"])
    cases = [
        {"key": "a", "input": {"simulated_user": {"rubric": "dana", "max_turns": 3}}},
        {"key": "b", "input": {"turns": ["Hi", 42]}},
    ]

    response = post_cases(api_client, dataset.slug, secret, {"cases": cases})

    error = assert_error_shape(response, 400, "invalid")
    assert set(error["details"]) == {"cases[0].input", "cases[1].input"}
    assert error["details"]["cases[0].input"] == [
        "the simulated user's rubric 'dana' does not exist; create it first"
    ]
    assert any("input.turns[1] must be text" in m for m in error["details"]["cases[1].input"])
    assert Case.objects.filter(dataset=dataset).count() == 1


SIMULATIONS = Path(__file__).parent / "corpus" / "deepeval" / "simulations.json"


@pytest.mark.django_db
def test_deepeval_goldens_import_as_simulated_users_only_of_a_rubric_that_exists(tmp_path, dataset_owner):
    dataset = make_dataset("support-bot", owner=dataset_owner)
    # --allow-lossy: the expected outcome is kept only when --reference-as names its check.
    args = (
        "--format",
        "deepeval",
        "--persona",
        "impatient-customer",
        "--allow-lossy",
        "--as",
        dataset_owner.username,
    )

    with pytest.raises(CommandError) as failed:
        run_import(dataset, SIMULATIONS, *args)
    message = str(failed.value)
    assert "line 2: input: the simulated user's rubric 'impatient-customer' does not exist" in message
    assert "line 8: input: the simulated user's rubric 'impatient-customer' does not exist" in message
    assert not Case.objects.exists()

    owner = make_user(roles=("Rubric owner",))
    save_rubric(slug="impatient-customer", name="Impatient customer", owner=owner)
    endpoint = make_endpoint("http://127.0.0.1:9/v1")
    make_rubric_version(endpoint, owner=owner, prompt_template=SIMULATED_USER_PROMPT_TEMPLATE)
    run_import(dataset, SIMULATIONS, *args)
    imported = {c.key: c.input for c in Case.objects.filter(dataset=dataset)}
    assert imported["vip-ticket"]["simulated_user"]["rubric"] == "impatient-customer"
    assert imported["refund-follow-up"]["messages"][-1]["role"] == "assistant"


@pytest.mark.django_db
def test_the_admin_import_form_takes_the_persona_too(client, dataset_owner):
    client.force_login(dataset_owner)
    dataset = make_dataset("support-bot", owner=dataset_owner)
    body = {
        "file": SimpleUploadedFile("goldens.json", SIMULATIONS.read_bytes()),
        "format": "deepeval",
        "persona": "impatient-customer",
        "allow_lossy": "on",
    }

    response = client.post(reverse("admin:datasets_app_dataset_import", args=[dataset.pk]), body)

    assert "the simulated user's rubric 'impatient-customer' does not exist" in str(
        response.context["errors"][0]
    )
    assert response.context["options"]["persona"] == "impatient-customer"  # carried to the confirming POST


def test_a_promptfoo_export_says_a_conversation_is_not_exported():
    case = {
        "key": "lost-parcel",
        "input": {"messages": OPENING, "turns": ["Hi", "Refund it."]},
        "expected": {},
    }
    text, notes = export_promptfoo([case])
    assert notes == [
        "case lost-parcel: input.turns (a multi-turn conversation) is not exported; "
        "only its opening messages are"
    ]
    assert "Refund it." not in text and "Northwind" in text


# Admin walk M2: the case form took a simulated user whose rubric does not exist (the API,
# imports and apply_config refuse it), and an audit made the case active. The services the
# form calls now ask too, so every path agrees.

UNKNOWN_PERSONA = {"simulated_user": {"rubric": "no-such-persona", "max_turns": 3}}


@pytest.mark.django_db
def test_the_case_form_refuses_a_simulated_user_whose_rubric_does_not_exist(client, expert):
    client.force_login(expert)
    dataset, failure_class = make_dataset(), make_failure_class()

    response = client.post(
        ADD, add_form(dataset, failure_class, user_message="", input=json.dumps(UNKNOWN_PERSONA))
    )

    assert response.status_code == 200 and not Case.objects.exists()
    assert "input.simulated_user.rubric: no rubric 'no-such-persona'" in " ".join(
        response.context["adminform"].form.errors["input"]
    )
    save_rubric(slug="no-such-persona", name="Now it exists", owner=make_user())
    client.post(ADD, add_form(dataset, failure_class, user_message="", input=json.dumps(UNKNOWN_PERSONA)))
    assert Case.objects.get().input == UNKNOWN_PERSONA


@pytest.mark.django_db
def test_add_and_edit_case_refuse_an_unknown_persona_whatever_calls_them(expert):
    dataset, failure_class = make_dataset(), make_failure_class()
    with pytest.raises(ValidationError, match="no rubric 'no-such-persona'"):
        services.add_case(
            dataset=dataset, key="k", failure_class=failure_class, input=UNKNOWN_PERSONA, actor=expert
        )
    case = make_case(dataset, "k", failure_class=failure_class, active=False)

    with pytest.raises(ValidationError, match="no rubric 'no-such-persona'"):
        services.edit_case(case, actor=expert, input=UNKNOWN_PERSONA)

    assert Case.objects.get(pk=case.pk).input != UNKNOWN_PERSONA


@pytest.mark.django_db
def test_a_case_naming_an_unknown_persona_is_never_audited_into_the_suite(client, expert, reviewer):
    case = make_case(make_dataset(), "walk-unknown-persona", failure_class=make_failure_class(), active=False)
    Case.objects.filter(pk=case.pk).update(input=UNKNOWN_PERSONA)  # written before this check
    case.refresh_from_db()

    assert "no rubric 'no-such-persona'" in str(services.audit_refusal(case, reviewer, case.tier))
    with pytest.raises(ValidationError, match="cannot be played as it is"):
        services.audit_case(case, actor=reviewer)
    client.force_login(reviewer)
    page = client.get(reverse("admin:datasets_app_case_change", args=[case.pk])).content.decode()
    assert "Audit and activate" not in page  # offered only to whom the service would allow
    assert Case.objects.get(pk=case.pk).status == "draft"


@pytest.mark.django_db
def test_the_case_page_names_the_simulated_user_and_the_scripted_turns(client, expert):
    # Admin walk M2, also: "Conversation: -" for a simulated-user case.
    save_rubric(slug="impatient-customer", name="Impatient customer", owner=make_user())
    dataset, failure_class = make_dataset(), make_failure_class()
    simulated = services.add_case(
        dataset=dataset,
        key="sim",
        failure_class=failure_class,
        input={"simulated_user": {"rubric": "impatient-customer", "scenario": "Parcel A-17 is lost."}},
        actor=expert,
    )
    scripted = services.add_case(
        dataset=dataset,
        key="script",
        failure_class=failure_class,
        input={"turns": ["Hi", "Refund it."]},
        actor=expert,
    )
    client.force_login(expert)

    sim_page = client.get(reverse("admin:datasets_app_case_change", args=[simulated.pk])).content.decode()
    script_page = client.get(reverse("admin:datasets_app_case_change", args=[scripted.pk])).content.decode()

    assert "played by rubric impatient-customer, at most 5 turns" in sim_page
    assert "Parcel A-17 is lost." in sim_page
    assert "<b>user (scripted turn):</b> Refund it." in script_page
