"""The human review queue: reviewers label a sample of judged results, one at a time."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from datasets_app.conversations import conversation_of
from grading_app import services
from grading_app.conversations import transcript_text
from grading_app.models import Grade, HumanLabel
from grading_app.services.labels import review_queue
from grading_app.traces import normalise_trace


def _pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _conversation(grade: Grade) -> str:
    """The conversation as the judge read it ("" for a single answer): a reviewer of a
    multi-turn case labels what was said, not only its last answer and scripted turns."""
    result, case_input = grade.case_result, grade.case_result.case.input
    if conversation_of(case_input) is None and "{transcript}" not in grade.rubric_version.prompt_template:
        return ""
    try:
        steps = normalise_trace(result.trace)
    except ValidationError:
        steps = []  # stored traces are normalised already; an odd one shows as the answer alone
    opening = case_input.get("messages") if isinstance(case_input, dict) else None
    return transcript_text(opening, steps, result.output)


class LabelForm(forms.Form):
    grade = forms.IntegerField(widget=forms.HiddenInput)
    passed = forms.TypedChoiceField(
        choices=[("true", "Pass"), ("false", "Fail")], coerce=lambda v: v == "true", widget=forms.RadioSelect
    )
    score = forms.FloatField(required=False, min_value=0, max_value=1, help_text="Optional, 0 to 1.")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 80}))


@admin.register(HumanLabel)
class HumanLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "grade", "reviewer", "passed", "score", "judge_said", "created_at"]
    list_filter = ["passed", "grade__rubric_version__rubric"]
    list_select_related = ["grade", "reviewer"]
    raw_id_fields = ["grade"]
    show_full_result_count = False

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("review/", view(self.review_view), name="grading_app_humanlabel_review"),
            *super().get_urls(),
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # labels come from the review queue

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Judge said", boolean=True)
    def judge_said(self, obj: HumanLabel) -> bool | None:
        return obj.grade.passed

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        link = format_html(
            '<a class="button" href="{}">Open the review queue</a>',
            reverse("admin:grading_app_humanlabel_review"),
        )
        return super().changelist_view(
            request, {**(extra_context or {}), "title": format_html("Human labels {}", link)}
        )

    def review_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("grading_app.add_humanlabel"):
            raise PermissionDenied
        form = LabelForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            grade = (
                Grade.objects.select_related("case_result__case")
                .filter(pk=form.cleaned_data["grade"])
                .first()
            )
            try:
                if grade is None:
                    raise ValidationError("That result no longer exists.")
                services.label_grade(
                    grade,
                    actor=request.user,
                    passed=form.cleaned_data["passed"],
                    score=form.cleaned_data["score"],
                    note=form.cleaned_data["note"],
                )
                # Only now, with the label saved, is the judge's answer shown: seeing it first
                # would anchor the label, and the kappa computed from labels with it.
                said = "pass" if form.cleaned_data["passed"] else "fail"
                judge = "pass" if grade.passed else "fail"
                why = grade.rationale.rstrip(".") or "no rationale"
                messages.success(
                    request,
                    f"Label saved for case {grade.case_result.case.key}: you said {said}; the judge said "
                    f"{judge} (score {grade.score}): {why}. Next one:",
                )
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
            return redirect("admin:grading_app_humanlabel_review")
        queue = review_queue(request.user)
        grade = queue.first()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Review judged results",
            "grade": grade,
            "remaining": queue.count(),
            "form": LabelForm(initial={"grade": grade.pk}) if grade else None,
            # JSON as JSON, text as text: never a Python repr in front of a reviewer.
            "input_json": _pretty(grade.case_result.case.input) if grade else "",
            "expected_json": _pretty(grade.case_result.case.expected) if grade else "",
            "output_text": _pretty(grade.case_result.output) if grade else "",
            "conversation": _conversation(grade) if grade else "",
        }
        return TemplateResponse(request, "admin/grading_app/review_queue.html", context)
