"""The design's one-way imports (gates_app -> monitoring_app -> grading_app -> datasets_app -> audit_app)
and settings rules."""

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"audit_app": 0, "datasets_app": 1, "grading_app": 2, "monitoring_app": 3, "gates_app": 4}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_apps_import_only_downstream():
    backwards = []
    for app, layer in LAYERS.items():
        for path in (REPO / app).rglob("*.py"):
            for module in imported_modules(path):
                target = module.split(".")[0]
                if target in LAYERS and LAYERS[target] > layer:
                    backwards.append(f"{path.relative_to(REPO)} imports {module}")
    assert backwards == []


def test_evalproject_imports_no_app_except_through_settings_strings():
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in (REPO / "evalproject").rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in LAYERS and path.name != "urls.py"
    ]
    assert offenders == []


def test_the_cli_uses_only_the_standard_library():
    modules = {m.split(".")[0] for m in imported_modules(REPO / "gates_app" / "client.py")}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "evalproject.settings", "DEBUG": "false"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr
