"""Read a corpus file the way `manage.py import_cases` reads it (its directory is the base)."""

from pathlib import Path

from datasets_app.importers import ImportPlan, read_cases

CORPUS = Path(__file__).parent / "corpus"


def read(relative: str, fmt: str, **options) -> ImportPlan:
    path = CORPUS / relative
    return read_cases(path.read_bytes(), fmt, base_dir=path.parent, file_name=path.name, **options)


def cases(plan: ImportPlan) -> dict[str, tuple]:
    """key -> (input, expected, tags) of every case read."""
    return {s.key: (s.input, s.expected, s.tags) for s in plan.specs}


def messages(plan: ImportPlan) -> dict[str, list]:
    return {s.key: s.input.get("messages") for s in plan.specs}


def expected(plan: ImportPlan) -> dict[str, dict]:
    return {s.key: s.expected for s in plan.specs}


def graders(plan: ImportPlan) -> dict[str, tuple]:
    return {g.slug: (g.kind, g.config, g.rubric) for g in plan.graders}


def dropped(plan: ImportPlan) -> list[str]:
    return [str(d) for d in plan.dropped]


def errors(plan: ImportPlan) -> list[str]:
    return [str(e) for e in plan.errors]


def _installed_promptfoo() -> Path:
    """promptfoo's CLI: the pinned install, else one on the PATH (`npm install -g promptfoo`)."""
    import shutil

    pinned = Path("/opt/promptfoo/node_modules/.bin/promptfoo")
    found = shutil.which("promptfoo")
    return Path(found) if found and not pinned.exists() else pinned


PROMPTFOO = _installed_promptfoo()


def _offline() -> list[str]:
    """A prefix running a command without a network (a user and network namespace of its own),
    where the machine allows it: promptfoo's echo runs need none, and must reach nothing."""
    import shutil
    import subprocess

    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], check=False).returncode == 0:
        return ["unshare", "-rn"]
    return []


def promptfoo_results(config: Path) -> list[dict]:
    """promptfoo's own results for ``config`` with its echo provider (the output is the rendered
    prompt): offline, nothing cached, written or shared, no telemetry or update check."""
    import json
    import os
    import subprocess

    out = config.parent / "promptfoo-results.json"
    state = config.parent / ".promptfoo"
    env = {
        **os.environ,
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_CONFIG_DIR": str(state),
        "PROMPTFOO_CACHE_PATH": str(state / "cache"),
    }
    command = [
        *_offline(),
        str(PROMPTFOO),
        "eval",
        "-c",
        str(config),
        "-r",
        "echo",
        "--no-cache",
        "--no-write",
    ]
    command += ["--no-share", "--no-progress-bar", "-o", str(out)]
    done = subprocess.run(command, cwd=config.parent, env=env, capture_output=True, timeout=300, check=False)
    assert out.exists(), done.stderr.decode()[-2000:]
    return json.loads(out.read_text())["results"]["results"]


def import_audited_suite(suite: str, slug: str, tmp_path: Path) -> tuple:
    """The promptfoo suite ``suite`` (a config under the corpus) copied to ``tmp_path`` (promptfoo
    writes beside its config), imported by `manage.py import_cases` into a new dataset ``slug``
    and every case audited by a reviewer: (dataset, the copy's directory)."""
    import io
    import shutil

    from django.core.management import call_command

    from datasets_app import services as datasets
    from datasets_app.models import Case
    from tests.factories import make_dataset, make_user

    importer = make_user("importer", roles=("Dataset owner", "Rubric owner"))
    reviewer = make_user("reviewer2", roles=("Reviewer",))
    dataset = make_dataset(slug, owner=importer)
    copy = tmp_path / "suite"
    shutil.copytree((CORPUS / suite).parent, copy)
    config = str(copy / "promptfooconfig.yaml")
    call_command(
        "import_cases", slug, config, "--format", "promptfoo", "--as", "importer", stdout=io.StringIO()
    )
    for case in Case.objects.filter(dataset=dataset):
        datasets.audit_case(datasets.submit_case(case, actor=importer), actor=reviewer)
    return dataset, copy


def export_promptfoo(dataset, tmp_path: Path, notes: list[str] | None = None) -> Path:
    """The dataset exported as a promptfoo config under ``tmp_path``/export; notes go to ``notes``."""
    from datasets_app.services import export_cases

    path = tmp_path / "export" / "promptfooconfig.yaml"
    path.parent.mkdir()
    path.write_text(export_cases(dataset, "promptfoo", actor=None, notes=[] if notes is None else notes))
    return path


def read_back(path: Path) -> dict[str, dict]:
    """key -> expected of an exported promptfoo config, read as an import would, carried whole."""
    plan = read_cases(path.read_bytes(), "promptfoo", base_dir=path.parent)
    assert plan.errors == [] and plan.dropped == []
    return {s.key: s.expected for s in plan.specs}


def assert_export_round_trips(dataset, tmp_path: Path) -> None:
    """The dataset exports to promptfoo without a note and reads back as the same cases."""
    from datasets_app.models import Case

    notes: list[str] = []
    path = export_promptfoo(dataset, tmp_path, notes)

    assert notes == []
    assert read_back(path) == {c.key: c.expected for c in Case.objects.filter(dataset=dataset)}


def promptfoo_verdicts(dataset, suite: Path, tmp_path: Path) -> tuple[dict[str, bool], dict[str, bool]]:
    """promptfoo's verdict per case key on the imported suite and on the dataset's export."""
    from django.utils.text import slugify

    export = export_promptfoo(dataset, tmp_path)
    source = {
        slugify(r["testCase"]["description"]): r["success"]
        for r in promptfoo_results(suite / "promptfooconfig.yaml")
    }
    exported = {r["testCase"]["metadata"]["key"]: r["success"] for r in promptfoo_results(export)}
    return source, exported
