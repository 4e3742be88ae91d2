"""Ending a finished command-line process without CPython's teardown of its modules' objects.

When ``manage.py run_eval`` has printed its summary, the interpreter still spends 0.2-0.25 s
destroying the ~120,000 objects Django, the admin and their imports built: work with no
observable effect for a process about to end. ``exit_without_teardown`` does first what a
normal exit does that anyone could observe (the atexit handlers, logging's flush among them;
the database connections closed; stdout and stderr flushed), then ends the process. If a
thread other than the main one that the interpreter would wait for is still running, it does
nothing and the process exits the normal way.
"""

import atexit
import contextlib
import os
import sys
import threading


def exit_without_teardown(code: int = 0) -> None:
    waited_for = [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if waited_for:
        return
    from django.db import connections

    connections.close_all()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing to do
            stream.flush()
    os._exit(code)
