"""Production traffic in the admin: sources (redaction, retention) and traces (read-only)."""

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

from grading_app.traces import timeline
from monitoring_app.models import Source, Trace


@admin.register(Source)
class SourceAdmin(SimpleHistoryAdmin):
    list_display = ["slug", "name", "owner", "retention_days", "redaction_rules"]
    search_fields = ["slug", "name"]
    autocomplete_fields = ["owner"]
    list_select_related = ["owner"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description="Redaction rules")
    def redaction_rules(self, obj: Source) -> int:
        return len(obj.redaction or [])


def _pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    """Traces are evidence: nobody edits one; they leave only by the retention purge."""

    list_display = ["client_id", "time", "source", "release", "latency_ms", "refused", "escalated", "thumbs"]
    list_filter = ["source", "origin", "thumbs", "refused", "escalated"]
    search_fields = ["client_id", "release"]
    date_hierarchy = "time"
    list_select_related = ["source"]
    show_full_result_count = False  # counting millions of rows for a header line is not worth it
    list_per_page = 100
    fields = [
        "source",
        "client_id",
        "time",
        "received_at",
        "release",
        "origin",
        "conversation",
        "output_shown",
        "steps",
        "signals",
        "feedback",
        "metadata_shown",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Trace | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Trace | None = None) -> bool:
        return False

    @admin.display(description="Input")
    def conversation(self, obj: Trace) -> SafeString:
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.input))

    @admin.display(description="Output")
    def output_shown(self, obj: Trace) -> SafeString:
        if obj.output is None:
            return format_html(
                "<em>{}</em>", "no final answer (the last turn called a tool, or none was sent)"
            )
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.output))

    @admin.display(description="Trace")
    def steps(self, obj: Trace) -> SafeString:
        return render_to_string("admin/grading_app/trace_timeline.html", {"steps": timeline(obj.trace)})

    @admin.display(description="Signals")
    def signals(self, obj: Trace) -> str:
        parts = [
            f"{label} {value}"
            for label, value in (
                ("latency", f"{obj.latency_ms:g} ms" if obj.latency_ms is not None else None),
                ("TTFT", f"{obj.ttft_ms:g} ms" if obj.ttft_ms is not None else None),
                ("tokens in", obj.input_tokens),
                ("tokens out", obj.output_tokens),
                ("cost", f"${obj.cost_usd:.6f}" if obj.cost_usd is not None else None),
                ("retries", obj.retries),
                ("refused", obj.refused),
                ("escalated", obj.escalated),
                ("tool calls", obj.tool_calls),
            )
            if value is not None
        ]
        return " · ".join(parts) or "none reported"

    @admin.display(description="Feedback")
    def feedback(self, obj: Trace) -> str:
        parts = [obj.get_thumbs_display() if obj.thumbs else ""]
        if obj.feedback_score is not None:
            parts.append(f"score {obj.feedback_score:g}")
        if obj.feedback_comment:
            parts.append(f"“{obj.feedback_comment}”")
        return " · ".join(p for p in parts if p) or "none"

    @admin.display(description="Metadata")
    def metadata_shown(self, obj: Trace) -> SafeString:
        return format_html('<pre class="result-json">{}</pre>', _pretty(obj.metadata))
