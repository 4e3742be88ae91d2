"""exit_without_teardown: a finished process ends without CPython's module teardown, but only
after what a normal exit does that anyone could see (atexit handlers, flushed output), and not
at all while a thread the interpreter would wait for is running."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(script).format(marker=tmp_path / "atexit-ran")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def test_atexit_handlers_run_and_buffered_output_is_flushed_before_the_process_ends(tmp_path):
    result = run(
        """
        import atexit, sys
        from pathlib import Path
        from evalproject.fastexit import exit_without_teardown
        atexit.register(lambda: Path("{marker}").write_text("yes"))
        sys.stdout.write("summary line, still buffered")  # no newline, no flush
        exit_without_teardown(3)
        print("after the exit")
        """,
        tmp_path,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "summary line, still buffered"
    assert (tmp_path / "atexit-ran").read_text() == "yes"


def test_a_running_thread_the_interpreter_would_wait_for_means_a_normal_exit(tmp_path):
    result = run(
        """
        import threading, time
        from evalproject.fastexit import exit_without_teardown
        done = threading.Event()
        worker = threading.Thread(target=lambda: (time.sleep(0.3), print("worker finished")))
        worker.start()
        exit_without_teardown(3)
        print("returned")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["returned", "worker finished"]
