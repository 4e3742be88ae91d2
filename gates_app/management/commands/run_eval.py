"""manage.py run_eval DATASET [--target SLUG | --outputs FILE] [--candidate ID] [--tier trusted]"""

import time
from pathlib import Path
from typing import Any

from django.core.checks import Tags
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets_app.choices import Tier
from datasets_app.models import Dataset
from gates_app.client import ClientError, read_outputs
from grading_app.models import Run, Target
from grading_app.outputs import parse_outputs
from grading_app.services import start_run


class Command(BaseCommand):
    help = "Run an eval through the same job path as the API and print the run summary."
    # Every system check but the URL configuration's: this command serves no URL, and that
    # check imports every view, DRF and the admin's (0.1-0.2 s of a 3.5 s 10,000-case run).
    # `manage.py check`, the servers and the workers still run it.
    requires_system_checks = [
        getattr(Tags, name) for name in vars(Tags) if not name.startswith("_") and name != "urls"
    ]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="dataset slug")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--target", help="target slug that produces the outputs")
        source.add_argument("--outputs", type=Path, help="JSONL of {case, output, trace, metrics}")
        parser.add_argument("--candidate", default="manual", help="label of what is evaluated")
        parser.add_argument("--tier", choices=Tier.values, default="", help="only this tier")
        parser.add_argument(
            "--trials",
            type=int,
            default=1,
            help="with --target: times each case runs (outputs carry `trial`)",
        )
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for workers")

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with slug {options['dataset']!r}.")
        target, outputs = None, None
        try:
            if options["target"]:
                target = Target.objects.filter(slug=options["target"]).first()
                if target is None:
                    raise CommandError(f"No target with slug {options['target']!r}.")
            else:
                # The evalgate CLI's reader: a byte-order mark, CRLF endings and U+2028 inside
                # JSON strings read the same whichever way a file of outputs is sent.
                try:
                    lines = read_outputs(str(options["outputs"]))
                except ClientError as exc:
                    raise CommandError(str(exc)) from None
                outputs = parse_outputs(lines)
            run = start_run(
                dataset=dataset,
                candidate=options["candidate"],
                outputs=outputs,
                target=target,
                tier=options["tier"],
                trials=options["trials"],
            )
        except ValidationError as exc:
            problems = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            message = "; ".join(f"{k}: {', '.join(v)}" if k else ", ".join(v) for k, v in problems.items())
            raise CommandError(message) from None
        deadline = time.monotonic() + options["timeout"]
        run.refresh_from_db()
        pause = 0.05  # a small run on idle workers finishes in well under a second
        while not run.is_finished:
            if time.monotonic() > deadline:
                raise CommandError(
                    f"Run {run.pk} still {run.status} after {options['timeout']:.0f}s; workers?"
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)
            run.refresh_from_db()
        self._print(run)

    def _print(self, run: Run) -> None:
        self.stdout.write(f"Run {run.pk} of {run.candidate} on {run.dataset.slug}: {run.status}")
        if run.error:
            self.stdout.write(f"  error: {run.error}")
        signals = run.summary.get("signals", {})
        counts = (signals.get(key, 0) for key in ("cases", "missing", "errors"))
        self.stdout.write("  cases {}, missing {}, errors {}".format(*counts))
        for name in ("latency_p50_ms", "latency_p95_ms", "ttft_p95_ms", "cost_per_case_usd", "refusal_rate"):
            if signals.get(name) is not None:
                self.stdout.write(f"  {name}: {signals[name]:.4g}")
        for slug, grader in run.summary.get("graders", {}).items():
            rate = "-" if grader["pass_rate"] is None else f"{grader['pass_rate']:.1%}"
            self.stdout.write(f"  {slug}: pass rate {rate} (n={grader['n']}, errors={grader['errors']})")
        trials = run.summary.get("trials")
        if trials:
            k = trials["k"]
            for slug, t in trials["graders"].items():
                self.stdout.write(
                    f"  {slug} over {k} trials: pass@{k} {_pct(t['pass_at_k'])}, pass^{k} "
                    f"{_pct(t['pass_hat_k'])}, consistency {_pct(t['consistency'])}, "
                    f"{t['flaky_cases']} flaky of {t['cases']} cases"
                )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
