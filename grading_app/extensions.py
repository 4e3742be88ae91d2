"""What grading_app tells the apps built on it while a run goes, besides the run_finished signal:
functions they register when they start, so imports still flow one way.

- ``chunk_written(run, chunk)``: a chunk's results and grades are committed. gates_app folds
  them into the partial verdict of the check waiting for the run (gates_app.partials). Called
  after the chunk's commit, outside its transaction: an observer that fails is logged and
  never fails the chunk (the finaliser then reads the whole run instead).
"""

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)
_chunk_observers: list[Callable[[Any, Any], None]] = []


def register_chunk_observer(observer: Callable[[Any, Any], None]) -> None:
    if observer not in _chunk_observers:
        _chunk_observers.append(observer)


def chunk_written(run: Any, chunk: Any) -> None:
    for observer in _chunk_observers:
        try:
            observer(run, chunk)
        except Exception:
            logger.exception("run %s chunk %s: an observer failed", run.pk, chunk.index)
