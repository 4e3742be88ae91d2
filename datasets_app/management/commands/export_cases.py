"""manage.py export_cases DATASET [--format jsonl|csv|promptfoo] [--output FILE]"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets_app import services
from datasets_app.models import Dataset
from datasets_app.services.imports import EXPORT_FORMATS


class Command(BaseCommand):
    help = (
        "Export a dataset's cases (not retired ones) as JSONL, CSV or a promptfoo config, importable again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="dataset slug")
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl")
        parser.add_argument("--output", type=Path, help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with slug {options['dataset']!r}.")
        notes: list[str] = []
        text = services.export_cases(dataset, options["format"], actor=None, notes=notes)
        if options["output"]:
            options["output"].write_text(text, encoding="utf-8")
        else:
            self.stdout.write(text, ending="")
        for note in notes:  # on stderr, so a config written to stdout stays valid YAML
            self.stderr.write(f"not exported: {note}")
