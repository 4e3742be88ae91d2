"""manage.py reap_runs [--loop SECONDS]: re-enqueue lost chunks, finalise settled runs."""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from grading_app.reaper import reap


class Command(BaseCommand):
    help = (
        "Find chunks of unfinished runs whose job is lost, failed or stale and re-enqueue them "
        "(bounded attempts); finalise runs whose chunks have all settled. Safe to run any time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", type=float, metavar="SECONDS", help="repeat every SECONDS, forever")

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            self.stdout.write(f"reap_runs: {reap()}")
            if not options["loop"]:
                return
            time.sleep(options["loop"])
