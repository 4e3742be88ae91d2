"""What the admin index shows above the app list: latest verdicts, runs in flight, review queue.

gates_app holds it because it is the one app allowed to read all three (imports run
gates -> grading -> datasets only); each section shows only to users who may view its rows.
"""

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, OuterRef, Subquery
from django.utils import timezone

from evalproject.charts import render
from gates_app import charts
from gates_app.choices import CheckStatus
from gates_app.models import Check
from gates_app.waiting import waiting_for
from grading_app.choices import RunStatus
from grading_app.models import HumanLabel, Run
from grading_app.services.labels import labellable

RUNS_SHOWN = 10
VERDICT_WINDOW = timedelta(days=30)


def latest_verdicts() -> list[Check]:
    """The latest decided check of each active gate, in gate order (one query)."""
    latest = (
        Check.objects.filter(gate=OuterRef("gate"), status=CheckStatus.DONE)
        .order_by("-created_at", "-pk")
        .values("pk")[:1]
    )
    return list(
        Check.objects.filter(gate__active=True, status=CheckStatus.DONE, pk=Subquery(latest))
        .select_related("gate")
        .order_by("gate__slug")
    )


def recent_verdict_counts(since: Any) -> dict[str, int]:
    """Verdict -> how many checks were decided that way since ``since`` (one query)."""
    rows = (
        Check.objects.filter(status=CheckStatus.DONE, decided_at__gte=since)
        .values("verdict")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["verdict"]: row["n"] for row in rows}


def runs_in_flight() -> tuple[list[Run], int]:
    """The oldest queued or running runs (those waiting longest first), and how many there are."""
    in_flight = Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
    shown = list(in_flight.select_related("dataset").order_by("created_at", "pk")[:RUNS_SHOWN])
    # A short page is the whole list: count only when there may be more.
    return shown, (len(shown) if len(shown) < RUNS_SHOWN else in_flight.count())


def review_queue_size() -> int:
    """Judged grades that no person has labelled yet."""
    labelled = HumanLabel.objects.filter(grade=OuterRef("pk"))
    return labellable().exclude(Exists(labelled)).count()  # what the review queue offers


def dashboard_context(user: AbstractBaseUser | AnonymousUser) -> dict[str, Any]:
    """The template context of the dashboard, holding only the sections ``user`` may see."""
    context: dict[str, Any] = {}
    if user.has_perm("gates_app.view_check"):
        counts = recent_verdict_counts(timezone.now() - VERDICT_WINDOW)
        title = f"Verdicts in the last {VERDICT_WINDOW.days} days"
        context["latest_checks"] = latest_verdicts()
        context["verdict_chart"] = (
            render(charts.verdict_counts(counts, title=title), height=260) if counts else None
        )
    if user.has_perm("grading_app.view_run"):
        context["runs"], context["runs_total"] = runs_in_flight()
    if user.has_perm("grading_app.view_grade"):
        context["review_queue_size"] = review_queue_size()
        context["can_label"] = user.has_perm("grading_app.add_humanlabel")
    sections = [section for section in waiting_for(user) if section.count]
    context["waiting"] = sections
    context["waiting_total"] = sum(section.count for section in sections)
    context["visible"] = True  # the "Waiting for me" summary is for everyone
    return context
