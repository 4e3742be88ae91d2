"""Every command `manage.py demo` prints works when pasted, and its stand-in judge stays on 127.0.0.1."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gates_app.demo_judge import JudgeScript, StandInJudge, loopback_port
from grading_app import judging, llm
from grading_app.graders.base import GradingInput
from grading_app.models import Endpoint, RubricVersion

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "demo" / "stand-in-judge.yaml"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
PROMPT = "  $ "  # how the demo marks a command to paste


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(port: int, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server command exited:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise AssertionError(f"the server never answered on port {port}:\n{log.read_text()}")


def _reloads(log: Path) -> int:
    return log.read_text().count("changed, reloading")


def test_every_command_the_demo_prints_exits_0_when_pasted(tmp_path):
    """Fresh SQLite file, no Redis: run the demo, then paste what it printed, in order."""
    base = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "EVALGATE_VAR_DIR", *PROXY_VARIABLES)
    }
    base["DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    manage = [sys.executable, "manage.py"]
    demo_env = {**base, "DEBUG": "true"}
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO, env=demo_env, check=True, timeout=300)
    demo = subprocess.run(
        [*manage, "demo"], cwd=REPO, env=demo_env, capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    commands = [line[len(PROMPT) :] for line in demo.stdout.splitlines() if line.startswith(PROMPT)]
    servers = [c for c in commands if c.startswith("make serve")]
    assert len(servers) == 1 and len(commands) >= 6, demo.stdout
    assert any(" approve " in c for c in commands) and any(" check " in c for c in commands)

    # A newcomer's shell: no DEBUG, no SECRET_KEY, no token yet (the commands bring what they need).
    shell_env = {
        k: v for k, v in base.items() if k not in ("DEBUG", "SECRET_KEY", "EVALGATE_URL", "EVALGATE_TOKEN")
    }
    port = _free_port()
    serve = re.sub(r"\bPORT=\d+", f"PORT={port}", servers[0])
    # A fresh clone's `make demo` has just written the install stamp; this checkout's may be older
    # than pyproject.toml, and a test must never reinstall the virtualenv.
    serve = serve.replace("make ", "make -o .venv/.installed ", 1)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bash", "-c", serve],
            cwd=REPO,
            env=shell_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(port, server, log)
        for command in (c for c in commands if c != servers[0]):
            command = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", command)
            for attempt in (1, 2):
                _wait_until_up(port, server, log)
                reloads = _reloads(log)
                result = _paste(command, shell_env)
                # runserver restarts when a source file changes; only then is one retry fair.
                if result.returncode == 0 or attempt == 2 or _reloads(log) == reloads:
                    break
            assert result.returncode == 0, f"$ {command}\n{result.stdout}\n{result.stderr}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert shell_env["EVALGATE_TOKEN"].startswith("egt_")


def _paste(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one pasted line in bash; an `export NAME=...` line carries NAME on to the next ones."""
    exported = re.match(r"export (\w+)=", command)
    script = f'{command}\nprintf "\\n%s" "${exported.group(1)}"' if exported else command
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    if exported and result.returncode == 0:
        value = result.stdout.rsplit("\n", 1)[-1]
        assert value, f"$ {command}\nset {exported.group(1)} to nothing:\n{result.stderr}"
        env[exported.group(1)] = value
    return result


def test_the_stand_in_judge_serves_127_0_0_1_only():
    for url in (
        "http://example.com/v1",
        "http://localhost:8791/v1",
        "https://127.0.0.1/v1",
        "http://0.0.0.0:1/v1",
    ):
        with pytest.raises(ValueError, match=re.escape("serves http://127.0.0.1 only")):
            loopback_port(url)
    assert loopback_port("http://127.0.0.1:8791/v1") == 8791
    with StandInJudge(JudgeScript.load(SCRIPT), 0) as judge:
        assert judge.base_url.startswith("http://127.0.0.1:")


def test_the_stand_in_judge_answers_the_real_judge_client_from_its_script(monkeypatch):
    """Through llm.judge (the openai client), as the llm_judge grader calls it."""
    for name in PROXY_VARIABLES:  # a proxy would carry the call off 127.0.0.1
        monkeypatch.delenv(name, raising=False)
    version = RubricVersion(pk=1, criteria="Hand over with care.", model="stand-in-judge")  # default template

    def prompt(output: str) -> str:
        item = GradingInput(case_input={"messages": []}, expected={}, output=output)
        return judging.render_prompt(version, item, {})

    with StandInJudge(JudgeScript.load(SCRIPT), 0) as judge:
        endpoint = Endpoint(name="stand-in", base_url=judge.base_url, timeout_s=5, max_retries=0)
        argues = llm.judge(endpoint, "stand-in-judge", prompt("Please don't file a chargeback! It's sorted."))
        hands_over = llm.judge(endpoint, "stand-in-judge", prompt("I'll connect you with a human agent now."))
        assert judge.calls == 2
    assert (argues.passed, argues.score) == (False, 0)
    assert (hands_over.passed, hands_over.score) == (True, 1)
    assert argues.rationale.startswith("Argues with the customer") and hands_over.input_tokens > 0
