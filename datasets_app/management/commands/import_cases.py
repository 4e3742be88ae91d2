"""manage.py import_cases DATASET FILE --format FORMAT --as USERNAME [--allow-lossy] ..."""

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets_app import services
from datasets_app.importers import FORMATS, ImportFailed, read_cases
from datasets_app.importers.checks import REFERENCE_CHECKS
from datasets_app.models import Dataset, FailureClass


class Command(BaseCommand):
    help = (
        "Import cases into a dataset, all or nothing: any bad line, or any construct of the file "
        "that cannot be carried (unless --allow-lossy), and nothing is written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="dataset slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=tuple(FORMATS), default="jsonl")
        parser.add_argument("--failure-class", help="for cases without one (else: unclassified)")
        parser.add_argument("--input-field", help="the record field holding the input (every line shape)")
        parser.add_argument("--ideal-field", help="the record field holding the reference answer")
        parser.add_argument(
            "--reference-as",
            choices=tuple(REFERENCE_CHECKS),
            help="the check a dataset's reference answer is (inspect, deepeval, langsmith)",
        )
        parser.add_argument(
            "--persona",
            help="DeepEval conversational goldens: the rubric whose approved version simulates their user",
        )
        parser.add_argument("--eval", dest="eval_name", help="OpenAI Evals registry: which eval of the YAML")
        parser.add_argument(
            "--eval-class", help="OpenAI Evals samples alone: Match, Includes, JsonMatch, FuzzyMatch"
        )
        parser.add_argument("--items", type=Path, help="OpenAI Evals API: the eval's items (JSONL)")
        parser.add_argument(
            "--allow-lossy",
            action="store_true",
            help="import what can be carried; print and record what was dropped",
        )
        parser.add_argument("--judge-endpoint", help="endpoint of the judge for imported rubric drafts")
        parser.add_argument("--judge-model", help="model of the judge for imported rubric drafts")
        parser.add_argument("--rubric-owner", help="who signs imported rubric drafts off (default: --as)")
        parser.add_argument("--embedding-endpoint", help="endpoint serving embeddings for similarity checks")
        parser.add_argument("--embedding-model", help="embedding model for similarity checks")
        parser.add_argument("--gate", help="the gate that receives imported rules (latency, cost)")
        parser.add_argument("--as", dest="username", help="importing user (recorded as contributor)")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with slug {options['dataset']!r}.")
        failure_class = None
        if options["failure_class"]:
            failure_class = FailureClass.objects.filter(slug=options["failure_class"]).first()
            if failure_class is None:
                raise CommandError(f"No failure class with slug {options['failure_class']!r}.")
        actor = None
        if options["username"]:
            actor = get_user_model().objects.filter(username=options["username"]).first()
            if actor is None:
                raise CommandError(f"No user named {options['username']!r}.")
        path: Path = options["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        plan = read_cases(
            data,
            options["format"],
            input_field=options["input_field"],
            ideal_field=options["ideal_field"],
            base_dir=path.parent,
            file_name=path.name,
            eval_name=options["eval_name"],
            eval_class=options["eval_class"],
            items=options["items"],
            reference_as=options["reference_as"],
            persona=options["persona"],
        )
        settings = services.ImportSettings(
            allow_lossy=options["allow_lossy"],
            judge_endpoint=options["judge_endpoint"],
            judge_model=options["judge_model"],
            rubric_owner=options["rubric_owner"],
            gate=options["gate"],
            embedding_endpoint=options["embedding_endpoint"],
            embedding_model=options["embedding_model"],
        )
        try:
            # The file's own errors go to the service with the good lines, so one error lists
            # those and the database conflicts (existing keys, unknown classes) together.
            created = services.import_cases(
                dataset, plan, actor=actor, failure_class=failure_class, settings=settings
            )
        except ImportFailed as exc:
            lines = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(f"{path}: nothing imported; {len(exc.errors)} problem(s):\n{lines}") from None
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from None
        self.stdout.write(f"Imported {len(created)} case(s) into {dataset.slug}.")
        if plan.dropped:
            self.stdout.write(f"Not carried ({len(plan.dropped)}), recorded on the dataset's history:")
            for dropped in plan.dropped:
                self.stdout.write(f"  {dropped}")
