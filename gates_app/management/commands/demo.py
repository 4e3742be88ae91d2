"""manage.py demo: build the Northwind support-bot demo from examples/demo/ and gate three candidates.

Everything the demo holds comes from the files in examples/demo/, loaded through the paths a
team uses: apply_config for the eval set, the incident and label services for what people do
in the admin, request_check for the checks. A stand-in judge (gates_app.demo_judge) answers the
LLM judge while the checks run. What it prints ends with commands that work when pasted.
"""

import datetime as dt
import os
import random
import secrets
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse
from django.utils import timezone

from datasets_app import services as datasets
from datasets_app.choices import CaseStatus, IncidentStatus
from datasets_app.models import Case, Dataset, FailureClass, Incident
from evalproject.queues import uses_redis
from gates_app.choices import CheckStatus, Verdict
from gates_app.client import ClientError, read_outputs, render_table
from gates_app.demo_judge import LOOPBACK, JudgeScript, ScriptError, StandInJudge, loopback_port
from gates_app.models import Check, Gate
from gates_app.production import production_verdict
from gates_app.services import request_check
from grading_app.calibration import agreement, cohen_kappa, human_pairs
from grading_app.choices import RubricState
from grading_app.models import Endpoint, Grade, HumanLabel, RubricVersion
from grading_app.services import label_grade, save_endpoint, submit_rubric_version
from monitoring_app.choices import SampleStatus
from monitoring_app.drift import evaluate_monitor
from monitoring_app.ingest import store_records
from monitoring_app.models import Monitor, MonitorSample, Source
from monitoring_app.records import MAX_BATCH, parse_records

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "demo"
SHOWN = "examples/demo"  # how the printed commands name that folder, from the repository root
GATE_SLUG = "support-release"
RUBRIC_SLUG = "escalation-care"
STAND_IN_ENDPOINT = "demo-stand-in-judge"
SERVE_PORT = 8000
ROLES = {
    "alice": ["Domain expert", "Rubric owner"],
    "bob": ["Reviewer", "Dataset owner", "Gate owner", "Rubric owner"],
    "carol": ["Release approver"],
    "dave": ["Reviewer"],
    "ci": [],  # the pipeline's account: it requests the demo's checks, so it may approve none
}


@dataclass(frozen=True)
class Candidate:
    name: str
    label: str
    outputs: str  # a file in examples/demo/, one item of the API's outputs list per line


CANDIDATES = (
    Candidate("v2.3.0", "good", "outputs-v2.3.0.jsonl"),
    Candidate("v2.4.0-rc1", "regressed", "outputs-v2.4.0-rc1.jsonl"),
    Candidate("v2.3.1", "slower", "outputs-v2.3.1.jsonl"),
)


class Command(BaseCommand):
    help = (
        "Create the Northwind support-bot demo from examples/demo/ (cases, graders, a judged rubric, "
        "an incident, human labels, a gate) and print the verdicts of three candidates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for workers")

    def handle(self, *args: Any, **options: Any) -> None:
        users, password = self._users()
        self.stdout.write(f"Evalgate demo: Northwind Outfitters' support bot, from the files in {SHOWN}/.")
        self._apply_config()
        gate = Gate.objects.get(slug=GATE_SLUG)
        with self._stand_in_judge(users["bob"]) as judge:
            incident_id = self._incident(users)
            self._submit_drafts()
            mode = "RQ workers on " + settings.REDIS_URL if uses_redis() else "in-process (no REDIS_URL)"
            self.stdout.write(f"Jobs run {mode}.")
            checks = {c.name: self._check(gate, c, users["ci"], options["timeout"]) for c in CANDIDATES}
        self.stdout.write(
            f"\nThe stand-in judge answered {judge.calls} call(s); the other judged results came from "
            "the judge cache\n  (the same model, rubric version and prompt are never asked twice)."
        )
        self._labels(checks)
        summary = ", ".join(f"{check.pk} {name} {self._state(check)}" for name, check in checks.items())
        self.stdout.write(f"Checks: {summary}.")
        production = self._production(gate, options["timeout"])
        self._next_steps(checks, incident_id, password, production)

    def _users(self) -> tuple[dict[str, AbstractUser], str]:
        """The demo's people, each in the role groups the migrations create."""
        user_model = get_user_model()
        password = secrets.token_urlsafe(9)
        users = {}
        for username, groups in ROLES.items():
            users[username], _ = user_model.objects.get_or_create(
                username=username, defaults={"first_name": username.title(), "is_staff": bool(groups)}
            )
            users[username].groups.add(*Group.objects.filter(name__in=groups))
            if groups:
                users[username].set_password(password)
                users[username].save()
        admin, _ = user_model.objects.get_or_create(username="demo-admin")
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        return users, password

    def _apply_config(self) -> None:
        """The eval set as code, applied as bob: he audits the cases alice contributed."""
        out = StringIO()
        call_command("apply_config", str(EXAMPLES / "evals.yaml"), "--as", "bob", stdout=out)
        changed = out.getvalue().strip().splitlines()[-1]
        self.stdout.write(f"Applied {SHOWN}/evals.yaml as bob: {changed[0].lower()}{changed[1:]}")

    def _stand_in_judge(self, actor: AbstractUser) -> StandInJudge:
        """Serve the scripted judge where the stand-in endpoint points (127.0.0.1 only)."""
        endpoint = Endpoint.objects.get(name=STAND_IN_ENDPOINT)
        try:
            port = loopback_port(endpoint.base_url)
            script = JudgeScript.load(EXAMPLES / "stand-in-judge.yaml")
        except (ValueError, ScriptError) as exc:
            raise CommandError(f"endpoint {endpoint.name}: {exc}") from None
        # httpx (under the openai client) would send 127.0.0.1 through a configured proxy too.
        for name in ("NO_PROXY", "no_proxy"):
            os.environ[name] = ",".join(filter(None, [os.environ.get(name, ""), LOOPBACK]))
        try:
            judge = StandInJudge(script, port)
        except OSError:
            # The port is taken (another demo, say): take a free one and point the endpoint there.
            judge = StandInJudge(script, 0)
            save_endpoint(name=endpoint.name, base_url=judge.base_url, actor=actor)
        self.stdout.write(
            f"Stand-in judge: a scripted server, NOT a model, for endpoint {endpoint.name}, at\n"
            f"  {judge.base_url}, in this process while the demo runs;\n"
            f"  it answers as {SHOWN}/stand-in-judge.yaml says."
        )
        return judge

    def _incident(self, users: dict[str, AbstractUser]) -> int:
        """Report the incident, triage and convert it into a pinned case, audit that case;
        each step only if it has not happened yet, so running the demo again changes nothing."""
        spec = self._yaml("incident.yaml")
        report = dict(spec["report"])
        dataset = Dataset.objects.get(slug=report.pop("dataset"))
        failure_class = FailureClass.objects.get(slug=report.pop("failure_class"))
        key = spec["convert"]["key"]
        try:
            case = Case.objects.filter(dataset=dataset, key=key).first()
            incident = Incident.objects.filter(title=report["title"]).first()
            if case is None:
                incident = incident or datasets.report_incident(
                    **report,
                    dataset=dataset,
                    failure_class=failure_class,
                    actor=users["alice"],
                    reported_via="manage.py demo",
                )
                if incident.status == IncidentStatus.NEW:
                    incident = datasets.triage_incident(
                        incident, actor=users["bob"], note=spec["triage_note"]
                    )
                case = datasets.convert_incident(
                    incident,
                    actor=users["bob"],
                    dataset=dataset,
                    failure_class=failure_class,
                    key=key,
                    expected=spec["convert"]["expected"],
                )
            if case.status == CaseStatus.DRAFT:
                case = datasets.submit_case(case, actor=users["bob"])
            if case.status == CaseStatus.IN_REVIEW:
                # The converter contributed the case, so another reviewer audits it (four eyes).
                case = datasets.audit_case(case, actor=users["dave"], reason=f"replays {report['title']}")
        except (ValidationError, PermissionDenied) as exc:
            problem = "; ".join(getattr(exc, "messages", [str(exc)]))
            raise CommandError(f"{SHOWN}/incident.yaml: {problem}") from None
        self.stdout.write(
            f'Incident "{report["title"]}" ({SHOWN}/incident.yaml):\n'
            f"  reported by alice, converted by bob into the pinned case {key}, audited by {case.audited_by}."
        )
        self._inactive_note(dataset)
        return case.incident_id

    def _inactive_note(self, dataset: Dataset) -> None:
        inactive = Case.objects.filter(dataset=dataset).exclude(status=CaseStatus.ACTIVE).count()
        if inactive:
            self.stdout.write(f"Note: {inactive} case(s) of the demo dataset are not active and not run.")

    def _submit_drafts(self) -> None:
        """The file leaves the rubric's newest version as a draft: its author asks for sign-off."""
        for version in RubricVersion.objects.filter(rubric__slug=RUBRIC_SLUG, state=RubricState.DRAFT):
            submit_rubric_version(version, actor=version.author, note="submitted for sign-off (demo)")
        versions = RubricVersion.objects.filter(rubric__slug=RUBRIC_SLUG).order_by("number")
        states = []
        for version in versions.select_related("author", "rubric__owner"):
            state = version.get_state_display().lower()
            if signed := version.events.filter(to_state=RubricState.APPROVED).select_related("actor").first():
                state += f" by {signed.actor}"
            states.append(f"v{version.number} (written by {version.author}) {state}")
        self.stdout.write(
            f"Rubric {RUBRIC_SLUG}, owned by {versions[0].rubric.owner}:\n  {', '.join(states)};\n"
            "  the judge grader uses the latest approved version."
        )

    def _check(self, gate: Gate, candidate: Candidate, actor: AbstractUser, timeout: float) -> Check:
        try:
            outputs = read_outputs(str(EXAMPLES / candidate.outputs))
            # No metadata: the same request as `evalgate check --outputs FILE`, so the gate's
            # answer here is the answer the printed command gets.
            check, created = request_check(gate=gate, candidate=candidate.name, outputs=outputs, actor=actor)
        except (ClientError, ValidationError) as exc:
            raise CommandError(f"{SHOWN}/{candidate.outputs}: {exc}") from None
        check = self._wait(check, timeout)
        again = "" if created else " (decided earlier: the same request gets the same check)"
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"\n== Candidate {candidate.name} ({candidate.label}): check {check.pk}"
            )
            + again
        )
        self.stdout.write(render_table(self._as_api(check)) + "\n")
        return check

    def _labels(self, checks: dict[str, Check]) -> None:
        """A reviewer's labels of judged results, as the review queue records them."""
        path = EXAMPLES / "labels.jsonl"
        try:
            lines = read_outputs(str(path))
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        reviewers = set()
        for number, line in enumerate(lines, start=1):
            check = checks.get(line.get("candidate"))
            grade = (
                Grade.objects.filter(
                    case_result__run_id=check.run_id,
                    case_result__case__key=line.get("case"),
                    grader__slug=line.get("grader"),
                    rubric_version__isnull=False,
                ).first()
                if check
                else None
            )
            reviewer = get_user_model().objects.filter(username=line.get("reviewer")).first()
            if grade is None or reviewer is None:
                raise CommandError(f"{SHOWN}/labels.jsonl line {number}: no such judged result or reviewer")
            reviewers.add(reviewer.username)
            if HumanLabel.objects.filter(grade=grade, reviewer=reviewer).exists():
                continue  # labelled in an earlier run of the demo
            try:
                label_grade(grade, actor=reviewer, passed=line.get("passed"), note=line.get("note", ""))
            except (ValidationError, PermissionDenied) as exc:
                problem = "; ".join(getattr(exc, "messages", [str(exc)]))
                raise CommandError(f"{SHOWN}/labels.jsonl line {number}: {problem}") from None
        version = RubricVersion.objects.get(rubric__slug=RUBRIC_SLUG, state=RubricState.APPROVED)
        pairs = human_pairs(version)
        kappa = cohen_kappa(pairs)
        agreed = round((agreement(pairs) or 0) * len(pairs))
        self.stdout.write(
            f"Human labels ({SHOWN}/labels.jsonl): {', '.join(sorted(reviewers))} labelled {len(lines)} "
            f"judged results;\n  the judge of rubric {RUBRIC_SLUG} v{version.number} agrees with them on "
            f"{agreed} of {len(pairs)}, Cohen's kappa " + ("undefined." if kappa is None else f"{kappa:.2f}.")
        )

    @staticmethod
    def _awaits(check: Check) -> bool:
        return check.verdict == Verdict.WARN and not check.release_allowed

    @classmethod
    def _state(cls, check: Check) -> str:
        if cls._awaits(check):
            return "WARN (awaiting approval)"
        if check.verdict == Verdict.WARN:
            return "WARN (approved)"
        return check.verdict.upper() + (" (release allowed)" if check.release_allowed else "")

    def _production(self, gate: Gate, timeout: float) -> dict[str, Any]:
        """Three hours of the widget's traffic (examples/demo/traffic.yaml) through the ingestion
        path; the monitor grades its sample, drift is evaluated on the last hour, and v2.3.1's
        live traffic is judged against v2.3.0's, as a deploy script asks after shipping it."""
        spec = self._yaml("traffic.yaml")
        source = Source.objects.get(slug=spec["source"])
        monitor = Monitor.objects.get(source=source)
        end = timezone.now().replace(minute=0, second=0, microsecond=0)
        raw = traffic_records(spec, end)
        stored = 0
        for start in range(0, len(raw), MAX_BATCH):
            records = parse_records(raw[start : start + MAX_BATCH])
            stored += len(store_records(records, [source] * len(records)).stored)
        samples = MonitorSample.objects.filter(monitor=monitor)
        deadline = time.monotonic() + timeout
        while samples.filter(status=SampleStatus.PENDING).exists():
            if time.monotonic() > deadline:
                raise CommandError("The monitor's samples were not graded: are workers running?")
            time.sleep(0.5)
        evaluate_monitor(monitor, now=end)
        verdict = production_verdict(gate, spec["hours"][-1]["release"])
        releases = " and ".join(dict.fromkeys(hour["release"] for hour in spec["hours"]))
        again = "" if stored == len(raw) else f" ({len(raw) - stored} stored by an earlier run)"
        lines = [
            f"Production ({SHOWN}/traffic.yaml): {len(raw)} traces of {releases} from {source.slug}{again},",
            f"  redacted before storage; the monitor {monitor.slug} graded {samples.count()} of them.",
        ]
        last_hour = end - dt.timedelta(minutes=monitor.window_minutes)
        for alert in monitor.alerts.filter(window_start=last_hour).select_related("rule"):
            low, high = alert.interval
            lines.append(
                f"  Alert {alert.rule.name!r}: {alert.value:.4g} in the last hour against "
                f"{alert.reference_value:.4g} the hour before (95% interval of the difference: "
                f"{low:+.4g} to {high:+.4g})."
            )
        failing = [rule["name"] for rule in verdict["rules"] if rule["outcome"] == "fail"]
        because = f" ({', '.join(failing)}): roll it back" if failing else ""
        lines.append(
            f"  Post-release verdict of {verdict['candidate']} against {verdict['baseline']}: "
            f"{verdict['verdict'].upper()}{because}."
        )
        self.stdout.write("\n".join(lines))
        return {"monitor": monitor, "verdict": verdict}

    def _next_steps(
        self, checks: dict[str, Check], incident_id: int, password: str, production: dict[str, Any]
    ) -> None:
        """What to do next, each command on a line of its own ("  $ "), to paste from the repo root."""
        site = f"http://127.0.0.1:{SERVE_PORT}"
        good, warn = checks[CANDIDATES[0].name], checks[CANDIDATES[2].name]
        judged = Grade.objects.filter(rubric_version__isnull=False, passed__isnull=False).count()
        version_page = "grading_app_rubricversion_change"
        decision = "awaiting approval" if self._awaits(warn) else "approved"
        pages = [
            (f"check {warn.pk} ({warn.candidate}, {decision})", "gates_app_check_change", warn.pk),
            *(
                (f"rubric {RUBRIC_SLUG} v{v.number} ({v.get_state_display().lower()})", version_page, v.pk)
                for v in RubricVersion.objects.filter(rubric__slug=RUBRIC_SLUG).order_by("number")
            ),
            (f"the review queue ({judged} judged results)", "grading_app_humanlabel_review", None),
            ("the incident, now a pinned case", "datasets_app_incident_change", incident_id),
            (
                f"the monitor {production['monitor'].slug}",
                "monitoring_app_monitor_change",
                production["monitor"].pk,
            ),
        ]
        width = max(len(page[0]) for page in pages)
        token = "DEBUG=true .venv/bin/python manage.py create_token"
        lines = [
            "",
            *self._environment_note(),
            "Next steps, from the repository root. In a second terminal, serve the admin and the API",
            "and leave it running (another port works too: PORT=8001, and EVALGATE_URL to match):",
            f"  $ make serve PORT={SERVE_PORT}",
            "In the first terminal, ask the gate as a deploy script would, with a deploy token that bob",
            "issues (create_token prints the secret alone on its last line):",
            f"  $ export EVALGATE_URL={site}",
            f"  $ export EVALGATE_TOKEN=$({token} deploy-demo --gate {GATE_SLUG} --as bob | tail -n 1)",
            f"  $ .venv/bin/evalgate check {GATE_SLUG} --candidate {good.candidate} "
            f"--outputs {SHOWN}/{CANDIDATES[0].outputs} --wait",
            f"  $ .venv/bin/evalgate verdict {GATE_SLUG} --candidate {good.candidate}",
            f"The gate answered that exact request already (check {good.pk}): the API returns that check",
            "without grading again, and evalgate exits 0, release allowed.",
        ]
        if self._awaits(warn):
            reason = "p95 latency over budget on the smaller instance; accepted for this release"
            lines += [
                f"carol (release approver) acknowledges the warn verdict of {warn.candidate} (check "
                f"{warn.pk}) with a personal token of her own;",
                "then the deploy token sees the release allowed:",
                f"  $ EVALGATE_TOKEN=$({token} carol-laptop --user carol --as carol | tail -n 1) "
                f'.venv/bin/evalgate approve {warn.pk} --reason "{reason}"',
            ]
        else:
            lines.append(f"Check {warn.pk} ({warn.candidate}) is approved already; its release is allowed:")
        candidate = production["verdict"]["candidate"]
        lines += [
            f"  $ .venv/bin/evalgate verdict {GATE_SLUG} --candidate {warn.candidate}",
            "After shipping, the deploy script asks what the live traffic says (exit 1 on fail: roll back):",
            f"  $ .venv/bin/evalgate production {GATE_SLUG} --candidate {candidate} "
            f'|| echo "{candidate}: rolling back"',
            "",
            f"Open {site}/admin/ and log in as demo-admin (superuser) with the password {password}",
            "It works for alice (domain expert, rubric author), bob (reviewer; dataset, rubric and gate",
            "owner), carol (release approver) and dave (reviewer) too. Worth a look:",
            *(
                f"  {name.ljust(width)}  {site}{reverse('admin:' + url, args=[pk] if pk else [])}"
                for name, url, pk in pages
            ),
            "Signing off v2 (as bob) or editing cases changes what decides a verdict: later checks grade",
            "again and call the judge, and the stand-in judge serves only while the demo runs.",
        ]
        self.stdout.write("\n".join(lines))

    @staticmethod
    def _environment_note() -> list[str]:
        """The printed commands use the default database unless this shell's environment says otherwise."""
        names = [name for name in ("DATABASE_URL", "EVALGATE_VAR_DIR") if os.environ.get(name)]
        if not names:
            return []
        return [f"This demo ran with {' and '.join(names)} set: export the same in both terminals first."]

    @staticmethod
    def _yaml(name: str) -> dict[str, Any]:
        try:
            return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read {SHOWN}/{name}: {exc}") from None

    def _wait(self, check: Check, timeout: float) -> Check:
        """In-process jobs are done at commit; with RQ, poll the row the workers update."""
        deadline = time.monotonic() + timeout
        check.refresh_from_db()
        while check.status != CheckStatus.DONE:
            if time.monotonic() > deadline:
                raise CommandError(
                    f"Check {check.pk} not decided after {timeout:.0f}s: are workers running "
                    "(.venv/bin/python manage.py rqworker default)?"
                )
            time.sleep(0.5)
            check.refresh_from_db()
        return check

    @staticmethod
    def _as_api(check: Check) -> dict[str, Any]:
        return {
            "rules": check.rule_results,
            "verdict": check.verdict,
            "release_allowed": check.release_allowed,
        }


def traffic_records(spec: dict[str, Any], end: dt.datetime) -> list[dict[str, Any]]:
    """The trace records traffic.yaml describes, for the hours before ``end`` (seeded: the same
    records, ids included, every run)."""
    rng = random.Random(spec["seed"])
    hours = spec["hours"]
    conversations = spec["conversations"]
    out = []
    for number, hour in enumerate(hours):
        start = end - dt.timedelta(hours=len(hours) - number)
        for i in range(hour["traces"]):
            talk = conversations[i % len(conversations)]
            refused = rng.random() < hour["refused"]
            record = {
                "id": f"web-{hour['release']}-{number}-{i}",
                "time": (start + dt.timedelta(seconds=i * 3600 / hour["traces"])).isoformat(),
                "release": hour["release"],
                "input": {"messages": [{"role": "user", "content": talk["question"]}]},
                "output": spec["refusal"] if refused else talk["answer"],
                "metrics": {
                    "latency_ms": round(max(50.0, rng.gauss(hour["latency_ms"], hour["latency_ms"] / 5)), 1),
                    "refused": refused,
                },
            }
            if rng.random() < spec.get("thumbs_down", 0):
                record["feedback"] = {"thumbs": "down", "comment": "not what I asked"}
            out.append(record)
    return out
