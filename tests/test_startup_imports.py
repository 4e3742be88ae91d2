"""What a process imports before it has work: a run of code graders (run_eval, the API) must not
pay for openai's import (~0.5 s of CPU), and an RQ worker must import it before it forks, so no
work horse pays it per job."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import sys, django
django.setup()
{body}
print(sorted(m for m in ("openai", "grading_app.llm", "grading_app.personas") if m in sys.modules))
"""


def imported(body: str) -> str:
    return imported_output(body).splitlines()[-1]


def imported_output(body: str) -> str:
    env = {"DJANGO_SETTINGS_MODULE": "evalproject.settings", "DEBUG": "true", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_job_modules_and_the_admin_do_not_import_openai():
    body = "import grading_app.jobs, grading_app.execution, grading_app.judging\nimport django.urls\n"
    body += "django.urls.get_resolver().url_patterns"
    assert imported(body) == "[]"


def test_a_worker_imports_the_model_client_before_it_forks():
    body = "import redis\nfrom evalproject.worker import Worker\n"
    body += "Worker(['default'], connection=redis.Redis())"
    assert imported(body) == "['grading_app.llm', 'grading_app.personas', 'openai']"


def test_a_worker_loads_the_refusal_model_before_it_forks_and_django_setup_does_not():
    probe = "from grading_app import detectors\nprint('loaded', detectors.model.loaded())"
    assert "loaded False" in imported_output(
        "import django.urls\ndjango.urls.get_resolver().url_patterns\n" + probe
    )
    worker = (
        "import redis\nfrom evalproject.worker import Worker\nWorker(['default'], connection=redis.Redis())\n"
    )
    assert "loaded True" in imported_output(worker + probe)


def loaded_of(heavy: tuple[str, ...], first: str = "") -> list[str]:
    """Which of ``heavy`` a process has imported after ``first``, django.setup() and the URL
    configuration (the admin's and the API's modules)."""
    probe = "\n".join(
        [
            first,
            "import django.urls, sys",
            "django.urls.get_resolver().url_patterns",
            f"print('heavy', [m for m in {heavy!r} if m in sys.modules])",
        ]
    )
    line = [line for line in imported_output(probe).splitlines() if line.startswith("heavy ")][-1]
    return ast.literal_eval(line.removeprefix("heavy "))


def test_start_up_leaves_the_import_formats_readers_until_a_file_is_read():
    """Each import format's reader (promptfoo's brings jinja2's sandbox and yaml) loads when a file
    of that format is read or written, not at django.setup() or the admin's import (~40 ms a
    process)."""
    heavy = ("datasets_app.importers.promptfoo.suite", "datasets_app.importers.deepeval", "jinja2.sandbox")
    assert loaded_of(heavy) == []
    used = [
        "from datasets_app.importers import read_cases, export_promptfoo",
        'read_cases(b\'{"key": "a", "input": "hi"}\', \'deepeval\')',
        "export_promptfoo([])",
    ]
    assert loaded_of(heavy, "\n".join(used)) == list(heavy)


def test_start_up_leaves_chart_and_json_schema_libraries_until_they_are_used():
    """plotly's figure classes, jsonschema and jsonpath load on first use (evalproject.lazy),
    not at django.setup() or the admin's import (about 0.17 s of every process start)."""
    heavy = ("plotly.basedatatypes", "jsonschema.validators", "jsonpath.env")
    assert loaded_of(heavy) == []
    used = [
        "from grading_app.graders.schema import build_validator",
        "build_validator({'type': 'object'}, check_formats=False)",
        "from grading_app.graders.structured import _compiled_path",
        "_compiled_path('$.a', 'probe')",
        "from gates_app import charts",
        "charts.verdict_counts({'pass': 1})",
    ]
    assert loaded_of(heavy, "\n".join(used)) == list(heavy)
