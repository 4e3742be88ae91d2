"""manage.py purge_traces: delete traces past their source's retention (the cron job, by hand)."""

from typing import Any

from django.core.management.base import BaseCommand

from monitoring_app.ingest import assemble_quiet_traces, purge_expired_traces


class Command(BaseCommand):
    help = (
        "Delete production traces older than their source's retention (EVALGATE_TRACE_RETENTION_DAYS "
        "by default) and store OTLP traces whose root span never arrived. `rqcron gates_app.cron` "
        "does both periodically; run this from the system's cron in embedded mode."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        assembled = assemble_quiet_traces()
        deleted = purge_expired_traces()
        self.stdout.write(
            f"{deleted} trace(s) past retention deleted; {assembled} quiet OTLP trace(s) stored."
        )
