"""promptfoo suites from tests/datasets/corpus/promptfoo: what each file becomes, exactly."""

from tests.datasets.corpus_helpers import cases, dropped, errors, expected, graders, messages, read

TEMPLATE = "You answer for Acme support. Customer asks: {{question}}"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
# promptfoo's i- types ignore case by lower-casing both texts as JavaScript does.
JS_CASE = {"case_sensitive": False, "case_mapping": "lowercase"}


def icontains(*values: str, negate: bool = False) -> dict:
    return {"value": list(values), **JS_CASE, **({"negate": True} if negate else {})}


def test_basic_config_renders_the_prompt_and_carries_each_assertion_with_its_case_sensitivity():
    plan = read("promptfoo/basic/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == [] and dropped(plan) == []
    refund, order, phone = plan.specs
    assert (refund.key, refund.line, refund.tier, refund.failure_class, refund.risk, refund.tags) == (
        "refund-after-40-days",
        11,
        "trusted",
        "refunds",
        "high",
        ["region:eu"],
    )
    assert refund.input == {
        "messages": [
            {
                "role": "user",
                "content": "You answer for Acme support. Customer asks: Can I get a refund after 40 days?",
            }
        ],
        "vars": {"question": "Can I get a refund after 40 days?"},
        "prompt_template": TEMPLATE,
    }
    # defaultTest's assertion first, as promptfoo runs it; contains keeps its case, the i- types
    # ignore it for their own assertion only.
    never_an_ai = icontains("as an ai", negate=True)  # defaultTest's not-icontains
    assert refund.expected == {
        "contains_any": [
            never_an_ai,
            # YAML 1.2: `no` is text, as promptfoo reads it.
            icontains("no", "not possible"),
        ],
        "contains_all": ["30 days"],  # case as written: contains_all's default
        "starts_with": "No",
    }
    assert order.expected == {
        "contains_any": never_an_ai,
        # Validated in Ajv's default dialect, as promptfoo validates it.
        "is_json": {
            "value": True,
            "schema": {"$schema": DRAFT_07, "type": "object", "required": ["order_id"]},
        },
        "equals": {"value": {"order_id": 7, "status": "shipped"}},  # compared as JSON
    }
    assert (phone.key, phone.line) == ("test-3", 30)
    assert phone.expected == {"contains_any": never_an_ai, "pattern": r"\+1 \d{3}", "equals": "+1 555 0100"}
    assert graders(plan) == {
        "contains-all": ("contains_all", {}, None),
        "contains-any": ("contains_any", {}, None),
        "starts-with": ("starts_with", {}, None),
        "is-json": ("is_json", {}, None),
        "equals": ("equals", {}, None),
        "regex": ("regex", {}, None),
    }


def test_csv_tests_follow_promptfoos_column_conventions():
    plan = read("promptfoo/csv/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == []
    # __config:__expected2:threshold is also noted in the test's metadata, as promptfoo does.
    assert [(s.key, s.line, s.tier, s.tags) for s in plan.specs] == [
        ("greeting", 2, "trusted", ["greeting", "short", "threshold:3", "metric:fluency"]),
        ("night", 3, "monitoring", ["evening", "threshold:3", "metric:fluency"]),
        ("thanks", 4, "monitoring", ["threshold:3"]),
    ]
    assert messages(plan)["greeting"] == [
        {"role": "user", "content": "Convert this English to French: Hello world"}
    ]
    assert plan.specs[2].input["vars"] == {"language": "German", "input": "Thank you, friend"}
    assert expected(plan) == {
        "greeting": {"contains_all": icontains("bonjour"), "starts_with": "Bonjour"},
        "night": {"contains_any": ["noches", "buenas noches"], "equals": "Buenas noches"},
        # A plain __expected cell is an equals check; __threshold makes the row's assertions one
        # weighted score (either passing passes), each scoring 1 or 0 as promptfoo scores them.
        "thanks": {
            "assertion_set": {
                "threshold": 0.5,
                "assertions": [
                    {"kind": "equals", "expected": {"equals": "Danke"}, "binary": True},
                    {
                        "kind": "levenshtein",
                        "expected": {
                            "levenshtein": {"value": "Danke, Freund", "threshold": 3, "units": "utf16"}
                        },
                        "binary": True,
                    },
                ],
            }
        },
    }
    assert dropped(plan) == []
    assert graders(plan)["assertion-set"] == ("assertion_set", {}, None)


def test_file_tests_globs_and_two_prompts_make_one_case_per_prompt_and_test():
    plan = read("promptfoo/multi/promptfooconfig.json", "promptfoo")

    assert errors(plan) == [] and dropped(plan) == []
    assert [s.key for s in plan.specs] == [
        "shipping@prompts-1",
        "shipping@prompts-2",
        "warranty@prompts-1",
        "warranty@prompts-2",
        "payment@prompts-1",
        "payment@prompts-2",
        "inline@prompts-1",
        "inline@prompts-2",
    ]
    assert messages(plan)["warranty@prompts-2"] == [
        {"role": "user", "content": "Be brief and formal. Topic: warranty"}  # the test's tone wins
    ]
    assert messages(plan)["inline@prompts-1"] == [
        {"role": "user", "content": "Answer in a polite way: returns"}
    ]
    never_error = {"value": ["ERROR"], "negate": True}  # not-contains: none of them, case as written
    assert expected(plan)["shipping@prompts-1"] == {
        "contains_any": never_error,
        "contains_all": icontains("days"),
    }
    assert expected(plan)["warranty@prompts-1"] == {
        "contains_any": never_error,
        "contains_all": ["year", "warranty"],
    }
    assert expected(plan)["payment@prompts-2"] == {"contains_any": never_error, "pattern": "(card|cash)"}


def test_what_cannot_be_carried_is_listed_with_its_line_and_the_rest_is_kept():
    plan = read("promptfoo/lossy/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == []
    # The test's threshold makes its carried assertions one weighted score: pass/fail types score
    # 1 or 0 ("binary"), similarity and ROUGE their metric; icontains counts twice.
    assert expected(plan) == {
        "kept-and-dropped": {
            "assertion_set": {
                "threshold": 0.5,
                "assertions": [
                    {
                        "kind": "contains_all",
                        "expected": {"contains_all": icontains("refund")},
                        "weight": 2,
                        "binary": True,
                    },
                    {
                        "kind": "embedding_similarity",
                        "expected": {"similar": {"value": "Refunds within 30 days", "threshold": 0.8}},
                    },
                    {
                        "kind": "levenshtein",
                        "expected": {
                            "levenshtein": {
                                "value": "Refunds within 30 days",
                                "threshold": 5,
                                "units": "utf16",
                            }
                        },
                        "binary": True,
                    },
                    {  # promptfoo's default threshold
                        "kind": "rouge_n",
                        "expected": {"rouge_n": {"value": "Refunds within 30 days", "threshold": 0.75}},
                    },
                    {"kind": "contains_json", "expected": {"contains_json": True}, "binary": True},
                    {
                        "kind": "equals",
                        "expected": {"equals": {"value": "I don't know", "negate": True}},
                        "binary": True,
                    },
                ],
            }
        }
    }
    # Its similarity check asks the embedding endpoint the importer names.
    assert graders(plan) == {
        "assertion-set-similar": ("assertion_set", {"embedding_endpoint": "", "embedding_model": ""}, None)
    }
    assert dropped(plan) == [
        "line 4: defaultTest.options.transform: it rewrites the output with JavaScript or Python before the "
        "assertions, and no foreign code is run",
        "line 7: assert javascript: it runs JavaScript, Python or a webhook, and no foreign code is run",
        "line 26: assert is-valid-openai-function-call: the config's provider declares no tools or functions "
        "to check against",
        "line 27: assert python: it runs JavaScript, Python or a webhook, and no foreign code is run",
        "line 31: assert icontains: its transform is JavaScript or Python, and no foreign code is run",
        "line 12: threshold: the weighted score is taken over the assertions carried: the 4 not carried "
        "(each listed with its line) are left out of it",
    ]


def test_not_variants_similarity_scores_and_tool_calls_against_the_providers_tools():
    plan = read("promptfoo/negations/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == [] and dropped(plan) == []
    refund, summary = plan.specs
    parameters = {"type": "object", "properties": {"order": {"type": "integer"}}, "required": ["order"]}
    assert refund.expected == {
        "tool_definitions": [
            {"type": "function", "function": {"name": "issue_refund", "parameters": parameters}}
        ],
        "contains_any": {"value": ["Sorry"], "negate": True},
        "contains_all": icontains("refund", "denied", negate=True),
        "equals": {"value": "I cannot help.", "negate": True},
        "starts_with": {"value": "Unfortunately", "negate": True},
        "not_pattern": "[Ll]awyer",
        "is_json": {"value": True, "negate": True},
    }
    assert summary.expected == {
        # promptfoo's default threshold in a config is 0.75 (a CSV cell's, 0.8); the metric of
        # similar:dot and similar:euclidean, against the closest of a list too.
        "similar": [
            {"value": "Refunds are possible within 30 days.", "threshold": 0.75},
            {
                "value": ["Refunds within 30 days.", "You have 30 days to ask for a refund."],
                "threshold": 0.5,
                "metric": "euclidean",
            },
            {"value": "Refunds are never possible.", "threshold": 0.75, "metric": "dot", "negate": True},
        ],
        "levenshtein": {"value": "Refunds within 30 days.", "threshold": 12, "units": "utf16"},
        "rouge_n": {"value": "Refunds are possible within 30 days of purchase", "threshold": 0.6},
        "contains_json": {
            "value": True,
            "schema": {"$schema": DRAFT_07, "type": "object", "required": ["days"]},
        },
        # Two contains-any assertions: two checks, both must hold.
        "contains_any": [
            {"value": ["30 days", "thirty days"]},
            icontains("refund", "money back"),
        ],
        "length": {"value": True, "min": 5, "max": 60, "unit": "words"},  # word-count
    }
    assert graders(plan)["not-regex"] == ("regex", {"expected_field": "not_pattern", "negate": True}, None)
    assert graders(plan)["tool-schema"] == ("tool_schema", {}, None)


def test_not_forms_promptfoo_ignores_are_the_plain_checks_and_the_others_are_not_carried():
    plan = read("promptfoo/inverted/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == []
    ignored, inverted = plan.specs
    assert ignored.expected == {  # promptfoo never reads the not- of these two
        "closedqa": "Calls the tracking tool",
        "tool_definitions": [
            {
                "type": "function",
                "function": {
                    "name": "track_parcel",
                    "parameters": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}},
                        "required": ["id"],
                    },
                },
            }
        ],
    }
    assert inverted.expected == {"contains_all": icontains("hello")}
    assert dropped(plan) == [
        "line 23: assert not-llm-rubric: promptfoo inverts the judge's verdict; an Evalgate judge's verdict "
        "is the one its rubric's owner signs off and reviewers' labels are measured against, so it is never "
        "inverted (write the rubric for what must hold)",
        "line 25: assert not-latency: promptfoo passes it only when the test takes more than 200 ms; gate "
        "rules bound latency and cost from above only",
    ]


def test_every_imported_expectation_is_read_by_its_grader_without_error():
    """The shapes written are the ones the grader kinds read (a wrong shape is a grade error)."""
    from grading_app.graders import GradingInput, get_kind

    for suite in ("basic", "csv", "negations", "lossy", "judges", "chat"):
        plan = read(f"promptfoo/{suite}/promptfooconfig.yaml", "promptfoo")
        for spec in plan.specs:
            for grader in plan.graders:
                kind = get_kind(grader.kind)
                if (
                    kind.needs_rubric
                    or grader.kind == "embedding_similarity"
                    or "embedding_model" in grader.config
                ):
                    continue  # they call a model (a judge, an embedding endpoint)
                config = kind.validate_config(grader.config)
                item = GradingInput(case_input=spec.input, expected=spec.expected, output="some answer")
                kind.evaluate(item, config)  # raises on a shape the kind does not read


def test_judge_assertions_become_rubric_drafts_and_latency_and_cost_become_gate_rules():
    plan = read("promptfoo/judges/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == [] and dropped(plan) == []
    assert cases(plan)["angry-customer"][1:] == (
        {"llm_rubric": "Apologises and offers a concrete next step"},
        ["promptfoo-latency-3000", "promptfoo-cost-0.002"],
    )
    assert cases(plan)["closed-question"][1:] == (
        {
            "closedqa": "Says whether shipping to Norway is possible",
            "llm_rubric@0.8": "Is concise",
            "contains_any": icontains("lawsuit", "lawyer", negate=True),
            "is_refusal": True,  # decided by promptfoo's own refusal rule
        },
        ["promptfoo-latency-3000", "metric:safety"],
    )
    assert [(r.slug, r.pass_threshold) for r in plan.rubrics] == [
        ("promptfoo-llm-rubric", 0.0),
        ("promptfoo-closedqa", 0.0),
        ("promptfoo-llm-rubric-min-80", 0.8),
    ]
    judges = {slug: spec for slug, spec in graders(plan).items() if spec[0] == "llm_judge"}
    assert judges == {
        "promptfoo-llm-rubric": ("llm_judge", {"expected_field": "llm_rubric"}, "promptfoo-llm-rubric"),
        "promptfoo-closedqa": ("llm_judge", {"expected_field": "closedqa"}, "promptfoo-closedqa"),
        "promptfoo-llm-rubric-min-80": (
            "llm_judge",
            {"expected_field": "llm_rubric@0.8"},
            "promptfoo-llm-rubric-min-80",
        ),
    }
    assert [(r.name, r.metric, r.threshold, r.scope) for r in plan.rules] == [
        ("promptfoo latency <= 3000 ms", "latency_p95_ms", 3000.0, {"tags": ["promptfoo-latency-3000"]}),
        ("promptfoo cost <= 0.002 USD", "cost_per_case_usd", 0.002, {"tags": ["promptfoo-cost-0.002"]}),
    ]


def test_chat_prompt_files_and_list_vars_expand_like_promptfoo():
    plan = read("promptfoo/chat/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == []
    assert messages(plan) == {
        "sizes-1": [
            {"role": "system", "content": "You sell shirts."},
            {"role": "user", "content": "Do you have a small shirt?"},
        ],
        "sizes-2": [
            {"role": "system", "content": "You sell shirts."},
            {"role": "user", "content": "Do you have a large shirt?"},
        ],
        # With a prefix the rendered text is no longer a JSON chat: one user turn, as promptfoo sends it.
        "no-expansion": [
            {
                "role": "user",
                "content": 'Q: [{"role":"system","content":"You sell hats."},'
                '{"role":"user","content":"Do you have a small,large hat?"}]',
            }
        ],
    }
    assert expected(plan)["sizes-2"] == {"contains_all": icontains("large")}  # rendered with the test's vars


def test_file_references_outside_the_config_directory_or_missing_are_errors():
    plan = read("promptfoo/escape/inner/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == [
        "line 3: tests: file://../secrets.csv reaches outside the config's directory",
        "line 4: tests: file://missing.yaml: no such file",
    ]
    assert plan.specs == []


def test_an_upload_follows_no_file_reference():
    path = "promptfoo/csv/promptfooconfig.yaml"
    from datasets_app.importers import read_cases
    from tests.datasets.corpus_helpers import CORPUS

    plan = read_cases((CORPUS / path).read_bytes(), "promptfoo")

    assert errors(plan) == [
        "line 4: tests: file://translations.csv refers to a file; an uploaded file's directory is unknown, "
        "so import it with `manage.py import_cases` from the config's own directory"
    ]


def test_errors_name_real_lines_and_a_default_test_problem_once():
    plan = read("promptfoo/errors/promptfooconfig.yaml", "promptfoo")

    assert errors(plan) == [
        "line 4: assert: regex '(unclosed' is not a valid regular expression: missing ), unterminated "
        "subpattern at position 0",
        "line 8: test: unknown test field(s): colour",
        "line 12: assert: contains-all: the value must be a list of strings",
    ]
