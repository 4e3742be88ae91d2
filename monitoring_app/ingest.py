"""Storing production traffic: API batches and OTLP spans, redacted, each trace id stored once."""

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from evalproject.bulk import copy_insert
from monitoring_app import genai, online, redaction, rollups
from monitoring_app.choices import TraceOrigin
from monitoring_app.models import PendingSpan, Source, Trace
from monitoring_app.records import TraceRecord, parse_records

logger = logging.getLogger(__name__)
INSERT_BATCH = 1000


@dataclass
class Ingested:
    """What a batch did: ids stored now, ids already stored before (sent twice), spans held."""

    stored: list[int] = field(default_factory=list)  # Trace primary keys
    duplicates: list[str] = field(default_factory=list)  # client ids
    held_spans: int = 0
    late_spans: int = 0  # spans of traces assembled before they arrived (reported, not stored)


def resolve_sources(
    records: list[TraceRecord], allowed: QuerySet[Source], *, path: str = "traces"
) -> list[Source]:
    """The source of each record: its ``source`` slug among those the sender may write to, or,
    when it names none, the sender's only source. ValidationError naming every bad record."""
    by_slug = {source.slug: source for source in allowed}
    only = next(iter(by_slug.values())) if len(by_slug) == 1 else None
    resolved, errors = [], {}
    for index, record in enumerate(records):
        if record.source is None:
            if only is None:
                errors[f"{path}[{index}].source"] = (
                    "Required: this token may write to several sources, so each record names one."
                    if by_slug
                    else "This token may write to no trace source (link a source to its gate)."
                )
            resolved.append(only)
        elif record.source not in by_slug:
            errors[f"{path}[{index}].source"] = (
                f"Unknown source {record.source!r} (or not one this token may write to)."
            )
            resolved.append(None)
        else:
            resolved.append(by_slug[record.source])
    if errors:
        raise ValidationError(errors)
    return resolved


def _rules(source: Source, cache: dict[int, list[redaction.Rule]]) -> list[redaction.Rule]:
    if source.pk not in cache:
        cache[source.pk] = redaction.compile_rules(source.redaction)
    return cache[source.pk]


def _redacted(record: TraceRecord, source: Source, cache: dict[int, list[redaction.Rule]]) -> TraceRecord:
    """The record with its source's rules applied to every field they name (before any column is
    derived from it, so no column can carry what a rule removes)."""
    fields = {name: getattr(record, name) for name in redaction.FIELDS}
    return dataclasses.replace(record, **redaction.redact(fields, _rules(source, cache)))


def store_records(
    records: list[TraceRecord], sources: list[Source], *, origin: str = TraceOrigin.API
) -> Ingested:
    """Redact and store the records; a client id the source already sent is not stored again.

    Concurrent senders of the same id are settled by the unique constraint (ON CONFLICT DO
    NOTHING), so a retried batch never doubles a trace, whatever the timing.
    """
    result = Ingested()
    if not records:
        return result
    rules_cache: dict[int, list[redaction.Rule]] = {}
    by_source: dict[int, list[tuple[TraceRecord, Source]]] = defaultdict(list)
    for record, source in zip(records, sources, strict=True):
        by_source[source.pk].append((record, source))
    late: set[int] = set()
    new_rows: list[dict[str, Any]] = []
    with transaction.atomic():
        for source_id, pairs in by_source.items():
            rows = [
                {"source_id": source.pk, "origin": origin, **_redacted(record, source, rules_cache).columns()}
                for record, source in pairs
            ]
            # insert_traces skips what the source already sent (before, or at the same moment by a
            # concurrent request) and says what it wrote: every other id is a duplicate.
            written = insert_traces(rows)
            result.stored += [pk for pk, _ in written]
            pks = {client_id: pk for pk, client_id in written}  # a batch never repeats an id
            result.duplicates += [row["client_id"] for row in rows if row["client_id"] not in pks]
            new_rows += [{**row, "pk": pks[row["client_id"]]} for row in rows if row["client_id"] in pks]
            if rollups.touches_settled(row["time"] for row in rows if row["client_id"] in pks):
                late.add(source_id)
        online.sample_traces(new_rows)
        if late:  # last, so the source rows stay locked for as short a time as possible
            rollups.invalidate(late)
    return result


def insert_traces(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Insert traces given as their fields by name (``source_id``, ``origin`` and a record's
    columns), skipping any (source, client id) already stored; returns (pk, client id) of the
    rows written.

    On PostgreSQL through evalproject.bulk.copy_insert (COPY, then one ``INSERT ... ON CONFLICT
    DO NOTHING RETURNING``: no model instances, no statement of thousands of parameters);
    elsewhere the ORM's bulk_create with ignore_conflicts.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return _insert_with_orm(rows)
    return copy_insert(
        Trace, rows, skip_conflicts_on=("source_id", "client_id"), returning=("id", "client_id")
    )


def _insert_with_orm(rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """SQLite has one writer at a time: what is not stored yet is what this call writes."""

    def stored(candidates: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
        return list(
            Trace.objects.filter(
                source_id__in={r["source_id"] for r in candidates},
                client_id__in=[r["client_id"] for r in candidates],
            ).values_list("pk", "client_id", "source_id")
        )

    before = {(source_id, client_id) for _, client_id, source_id in stored(rows)}
    new = [r for r in rows if (r["source_id"], r["client_id"]) not in before]
    if not new:
        return []
    Trace.objects.bulk_create([Trace(**r) for r in new], batch_size=INSERT_BATCH, ignore_conflicts=True)
    return [(pk, client_id) for pk, client_id, _ in stored(new)]


def ingest_batch(raw: Any, allowed: QuerySet[Source]) -> Ingested:
    """``POST /api/v1/traces/``: validate the whole batch (nothing is stored if one record is bad)."""
    records = parse_records(raw)
    return store_records(records, resolve_sources(records, allowed))


# --- OTLP ------------------------------------------------------------------------------


def otlp_source(resource: dict[str, Any], header: str, allowed: QuerySet[Source]) -> Source | None:
    """The source of an exported resource: the one named by the ``Evalgate-Source`` header or the
    ``evalgate.source`` resource attribute, else a source named like its ``service.name``, else
    the sender's only source. None when the sender may not write to the source it names."""
    by_slug = {source.slug: source for source in allowed}
    explicit = header or resource.get("evalgate.source")
    if explicit:
        return by_slug.get(str(explicit))
    service = resource.get("service.name")
    if service and str(service) in by_slug:
        return by_slug[str(service)]
    return next(iter(by_slug.values())) if len(by_slug) == 1 else None


def _assemble(
    source: Source, trace_id: str, spans: list[dict[str, Any]], *, partial: bool
) -> TraceRecord | None:
    record = genai.record_from_spans(trace_id, spans)
    if partial:
        record["metadata"]["otel"]["partial"] = True
    try:
        return parse_records([record])[0]
    except ValidationError as exc:
        # The mapping produced something the record format refuses (a metric out of range):
        # the trace is dropped loudly, never stored half-checked.
        logger.warning("OTLP trace %s of %s refused: %s", trace_id, source.slug, exc.message_dict)
        return None


def ingest_spans(spans_by_source: dict[Source, list[dict[str, Any]]]) -> Ingested:
    """Store OTLP spans: a trace whose root span is here is assembled (with any spans held for
    it earlier) into one record; spans of traces still open are held until their root arrives."""
    result = Ingested()
    rules_cache: dict[int, list[redaction.Rule]] = {}
    with transaction.atomic():
        records: list[TraceRecord] = []
        sources: list[Source] = []
        for source, spans in spans_by_source.items():
            rules = _rules(source, rules_cache)
            by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for span in spans:
                by_trace[span["trace_id"]].append(redaction.redact_everything(span, rules))
            stored = set(
                Trace.objects.filter(source=source, client_id__in=list(by_trace)).values_list(
                    "client_id", flat=True
                )
            )
            complete = [
                t for t, s in by_trace.items() if t not in stored and any(not x["parent_id"] for x in s)
            ]
            held = PendingSpan.objects.select_for_update().filter(source=source, trace_id__in=complete)
            earlier: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for pending in held:
                earlier[pending.trace_id].append(pending.span)
            held.delete()
            for trace_id, trace_spans in by_trace.items():
                if trace_id in stored:
                    result.late_spans += len(trace_spans)
                elif trace_id in complete:
                    seen = {s["span_id"] for s in trace_spans}
                    all_spans = trace_spans + [s for s in earlier[trace_id] if s["span_id"] not in seen]
                    if (record := _assemble(source, trace_id, all_spans, partial=False)) is not None:
                        records.append(record)
                        sources.append(source)
                else:
                    PendingSpan.objects.bulk_create(
                        [
                            PendingSpan(source=source, trace_id=trace_id, span_id=s["span_id"], span=s)
                            for s in trace_spans
                        ],
                        ignore_conflicts=True,
                    )
                    result.held_spans += len(trace_spans)
        stored_now = store_records(records, sources, origin=TraceOrigin.OTLP)
    result.stored, result.duplicates = stored_now.stored, stored_now.duplicates
    return result


def assemble_quiet_traces(*, now: dt.datetime | None = None) -> int:
    """Periodic: traces whose root span never came (a crashed process, a lost export) are
    assembled from what arrived, marked partial, once no span came for the wait period."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.EVALGATE_OTLP_ASSEMBLY_WAIT_S)
    quiet = (
        PendingSpan.objects.values("source_id", "trace_id")
        .annotate(first=Min("received_at"), n=Count("pk"))
        .filter(first__lt=cutoff)
    )
    assembled = 0
    for group in quiet[:1000]:
        with transaction.atomic():
            held = list(
                PendingSpan.objects.select_for_update(skip_locked=True).filter(
                    source_id=group["source_id"], trace_id=group["trace_id"]
                )
            )
            if not held:
                continue
            source = Source.objects.get(pk=group["source_id"])
            PendingSpan.objects.filter(pk__in=[p.pk for p in held]).delete()
            record = _assemble(source, group["trace_id"], [p.span for p in held], partial=True)
            if record is not None:
                assembled += len(store_records([record], [source], origin=TraceOrigin.OTLP).stored)
    return assembled


def purge_expired_traces(*, now: dt.datetime | None = None, batch: int = 10_000) -> int:
    """Periodic: delete each source's traces older than its retention (in batches, so a large
    purge never holds one long transaction). Returns how many were deleted."""
    now = now or timezone.now()
    deleted = 0
    for source in Source.objects.all():
        days = source.retention_days or settings.EVALGATE_TRACE_RETENTION_DAYS
        cutoff = now - dt.timedelta(days=days)
        while True:
            ids = list(
                Trace.objects.filter(source=source, time__lt=cutoff).values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            with transaction.atomic():
                deleted += Trace.objects.filter(pk__in=ids).delete()[1].get("monitoring_app.Trace", 0)
                rollups.invalidate([source.pk])
    return deleted
