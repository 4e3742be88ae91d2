"""Admin forms for domain experts: plain fields for the common parts, JSON for the rest.

The question, the reference answer, refusals, citations and tools can be typed as plain
text; they are merged into the case's ``input`` and ``expected`` JSON. JSON errors say
where the JSON broke, in words.
"""

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from datasets_app.models import Case, Incident
from datasets_app.services import check_references, validate_case_content


class FittingTextarea(forms.Textarea):
    """A textarea tall enough for what it holds (between its own rows and MAX_ROWS), so pretty
    JSON shows whole instead of behind a scrollbar."""

    MAX_ROWS = 30

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        lines = str(context["widget"]["value"] or "").count("\n") + 2  # one spare line to type in
        minimum = int(context["widget"]["attrs"].get("rows", 2))
        context["widget"]["attrs"]["rows"] = max(minimum, min(lines, self.MAX_ROWS))
        return context


class ReadableJSONField(forms.JSONField):
    """A JSON field whose error says what is wrong and where (line and column), shown indented
    (``indent=None``: on one line, for short lists) and empty, not ``null``, when there is none."""

    def __init__(self, *, what: str, indent: int | None = 2, **kwargs: Any) -> None:
        self.what = what
        self.indent = indent
        kwargs.setdefault(
            "widget", FittingTextarea(attrs={"rows": 6, "cols": 90, "class": "vLargeTextField"})
        )
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        # Django's own shows a missing value (an add form, a box left out of a POST) as `null`,
        # which a domain expert would have to delete before typing; an empty box asks for input.
        if value is None:
            return ""
        if isinstance(value, InvalidJSONInput):
            return value  # what the user typed, as typed, so the error can be fixed in place
        return json.dumps(value, ensure_ascii=False, indent=self.indent, cls=self.encoder)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            try:
                json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"{self.what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
                ) from None
        return super().to_python(value)


def _lines(value: str, *, commas: bool = True) -> list[str]:
    if commas:
        value = value.replace(",", "\n")
    return [line.strip() for line in value.splitlines() if line.strip()]


def _to_bool(value: str) -> bool:
    return value == "true"


# Three states, because "must not refuse" is a check too (over-refusal), unlike "not graded".
TRI_STATE = [("", "(not graded)"), ("true", "Yes"), ("false", "No")]


class CaseForm(forms.ModelForm):
    user_message = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90}),
        help_text="What the user asks. Fills input.messages when the input JSON below is empty.",
    )
    answer = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 90}),
        help_text="The reference answer (expected.answer).",
    )
    contains = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 90}),
        help_text="Facts the answer must mention, one per line (expected.contains).",
    )
    must_refuse = forms.TypedChoiceField(
        required=False,
        choices=TRI_STATE,
        coerce=_to_bool,
        empty_value=None,
        help_text="Should the assistant decline this request? (expected.must_refuse)",
    )
    must_abstain = forms.TypedChoiceField(
        required=False,
        choices=TRI_STATE,
        coerce=_to_bool,
        empty_value=None,
        help_text="Should the assistant say it does not know? (expected.must_abstain)",
    )
    citations = forms.CharField(
        required=False, help_text="Document ids the answer must cite, comma-separated (e.g. doc-7, doc-9)."
    )
    tools = forms.CharField(
        required=False, help_text="Tools the assistant must call, comma-separated (e.g. lookup_order)."
    )
    input = ReadableJSONField(
        what="Input",
        required=False,
        help_text='e.g. {"messages": [{"role": "user", ...}]}; a conversation: {"turns": ["first", '
        '"second", ...]} (the user\'s turns), or {"simulated_user": {"rubric": "persona-slug", '
        '"scenario": "...", "max_turns": 5}}.',
    )
    expected = ReadableJSONField(
        what="Expected", required=False, help_text="Advanced: any other expected keys."
    )
    tags = ReadableJSONField(
        what="Tags", indent=None, required=False, help_text='A JSON list, e.g. ["refunds", "eu"].'
    )

    class Meta:
        model = Case
        fields = ["dataset", "key", "failure_class", "tier", "risk", "pinned", "tags", "input", "expected"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            # The declared JSON fields do not inherit the model's defaults, so an add form
            # would start at null. {} and [] are what an empty expected and tags mean; input
            # stays empty: the user message above fills it, and {} is not a valid input.
            self.fields["expected"].initial = {}
            self.fields["tags"].initial = []
        expected = self.instance.expected if self.instance.pk else {}
        initial = {
            "answer": expected.get("answer") if isinstance(expected.get("answer"), str) else "",
            "contains": "\n".join(expected.get("contains") or [])
            if isinstance(expected.get("contains"), list)
            else expected.get("contains", ""),
            "must_refuse": {True: "true", False: "false"}.get(expected.get("must_refuse"), ""),
            "must_abstain": {True: "true", False: "false"}.get(expected.get("must_abstain"), ""),
            "citations": ", ".join(expected.get("citations") or []),
            "tools": ", ".join(expected.get("tools") or []),
        }
        for name, value in initial.items():
            self.fields[name].initial = value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        input_value = data.get("input") or {}
        if data.get("user_message"):
            input_value = {**input_value} if input_value else {}
            input_value.setdefault("messages", [{"role": "user", "content": data["user_message"]}])
        expected = dict(data.get("expected") or {})
        # A plain field the user changed wins over the same key in the JSON (emptied, it
        # removes the key); an untouched one leaves whatever the JSON says, so an untouched
        # save rewrites nothing and an edit made in the JSON box is kept.
        for key, value in (
            ("answer", data.get("answer", "").strip()),
            ("contains", _lines(data.get("contains", ""), commas=False)),  # facts may hold commas
            ("must_refuse", data.get("must_refuse")),
            ("must_abstain", data.get("must_abstain")),
            ("citations", _lines(data.get("citations", ""))),
            ("tools", _lines(data.get("tools", ""))),
        ):
            if key not in self.changed_data:
                continue
            if value not in (None, "", []):
                expected[key] = value
            else:
                expected.pop(key, None)
        data["input"], data["expected"] = input_value, expected
        data["tags"] = data.get("tags") or []
        # The change page shows the dataset read-only, so Django's own check skips the
        # (dataset, key) constraint; without this a taken key fails in the service, a 500.
        if (
            self.instance.pk
            and "dataset" not in self.fields
            and Case.objects.filter(dataset_id=self.instance.dataset_id, key=data.get("key"))
            .exclude(pk=self.instance.pk)
            .exists()
        ):
            self.add_error("key", "A case with this key already exists in this dataset.")
        if self.instance.pk and self.instance.pinned and not data.get("pinned"):
            self.add_error(
                "pinned",
                'Unpinning takes two people: use the action "Ask to unpin or retire pinned cases"; '
                "someone else confirms it.",
            )
        try:
            validate_case_content(data["input"], data["expected"], data["tags"])
            if not self.instance.pk or data["input"] != self.instance.input:
                check_references(data["input"])  # as edit_case: only what this edit names
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, problems)
        return data


class IncidentConvertForm(forms.Form):
    """Where the regression case of an incident goes, and what success looks like for it."""

    dataset = forms.ModelChoiceField(queryset=None)
    failure_class = forms.ModelChoiceField(queryset=None)
    key = forms.SlugField(max_length=200, help_text="Stable id of the new case in the dataset.")
    expected = ReadableJSONField(
        what="Expected",
        required=False,
        help_text='What a correct answer looks like, e.g. {"must_refuse": true}.',
    )

    def __init__(self, *args: Any, incident: Incident, **kwargs: Any) -> None:
        from datasets_app.models import Dataset, FailureClass

        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.all()
        self.fields["failure_class"].queryset = FailureClass.objects.all()
        self.fields["dataset"].initial = incident.dataset_id
        self.fields["failure_class"].initial = incident.failure_class_id
        self.fields["key"].initial = f"incident-{incident.pk}"


class ImportForm(forms.Form):
    FORMATS = [
        ("jsonl", "JSONL (Evalgate cases)"),
        ("csv", "CSV"),
        ("promptfoo", "promptfoo config or tests (YAML/JSON)"),
        ("openai-evals", "OpenAI Evals samples (JSONL or a JSON array)"),
        ("inspect", "inspect_ai dataset (JSONL, JSON or CSV)"),
        ("deepeval", "DeepEval goldens (JSON, JSONL or CSV)"),
        ("langsmith", "LangSmith dataset export (JSONL or CSV)"),
        ("langfuse", "Langfuse dataset items (JSONL)"),
    ]
    # What the import preview carries from its upload to the confirming POST.
    OPTIONS = (
        "format",
        "input_field",
        "ideal_field",
        "reference_as",
        "persona",
        "eval_class",
        "allow_lossy",
        "judge_endpoint",
        "judge_model",
        "embedding_endpoint",
        "embedding_model",
        "gate",
    )

    file = forms.FileField()
    format = forms.ChoiceField(choices=FORMATS)
    failure_class = forms.ModelChoiceField(
        queryset=None,
        required=False,
        help_text="For files without failure classes; empty: 'unclassified', flagged for triage.",
    )
    input_field = forms.CharField(
        required=False, help_text="The record field holding the input, if not the usual one."
    )
    ideal_field = forms.CharField(required=False, help_text="The record field holding the reference answer.")
    reference_as = forms.ChoiceField(
        required=False,
        choices=[
            ("", "(not checked: the file must say)"),
            ("answer", "answer (normalised exact match)"),
            ("equals", "equals (exact)"),
            ("contains", "contains all, ignoring case"),
            ("contains_any", "contains any, ignoring case"),
            ("contains_cs", "contains all, case-sensitive"),
            ("contains_any_cs", "contains any, case-sensitive"),
        ],
        help_text=(
            "inspect_ai, DeepEval, LangSmith and Langfuse keep the check of a reference answer in code: "
            "say which it is."
        ),
    )
    persona = forms.SlugField(
        required=False,
        help_text="DeepEval conversational goldens: the rubric whose approved version plays their user "
        "(from the golden's scenario); empty: each golden is the conversation so far, answered once.",
    )
    eval_class = forms.ChoiceField(
        required=False,
        choices=[
            ("", "-"),
            ("Match", "Match"),
            ("Includes", "Includes"),
            ("JsonMatch", "JsonMatch"),
            ("FuzzyMatch", "FuzzyMatch"),
        ],
        help_text="OpenAI Evals samples: the eval class that grades them.",
    )
    allow_lossy = forms.BooleanField(
        required=False,
        help_text="Import what can be carried; what cannot is listed and kept on the dataset's history.",
    )
    judge_endpoint = forms.CharField(
        required=False, help_text="For judge assertions: the endpoint of their rubric drafts."
    )
    judge_model = forms.CharField(required=False, help_text="For judge assertions: the judge model.")
    embedding_endpoint = forms.CharField(
        required=False, help_text="For similarity assertions: the endpoint serving embeddings."
    )
    embedding_model = forms.CharField(
        required=False, help_text="For similarity assertions: the embedding model."
    )
    gate = forms.CharField(
        required=False, help_text="For latency and cost assertions: the gate that gets their rules."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from datasets_app.models import FailureClass

        super().__init__(*args, **kwargs)
        self.fields["failure_class"].queryset = FailureClass.objects.all()
