"""manage.py verify_audit [--head HASH]: recompute the audit chain; exit 1 at the first broken link."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit_app.services import verify_chain


class Command(BaseCommand):
    help = (
        "Recompute the hash chain of the audit log from its first event. Prints the number of "
        "events and the head hash (record it outside the database; pass it back with --head to "
        "detect events cut off the end). Exits 1 naming the first broken link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--head", default="", help="a head hash printed by an earlier run")

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain(options["head"].strip())
        if report.problem:
            where = f" (first broken link: event #{report.broken_at})" if report.broken_at else ""
            raise CommandError(f"audit log broken{where}: {report.problem}", returncode=1)
        self.stdout.write(f"audit log intact: {report.events} event(s), head {report.head}")
