"""Importing a library on first use."""

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, imported when one of its attributes is first read (importlib's LazyLoader).

    For libraries that modules imported at start-up need only on some paths: plotly's figure
    classes (0.08-0.1 s, only a page drawing a chart needs them), jsonschema and jsonpath (about
    0.08 s together, only the graders of JSON need them). Every process pays what it imports at
    start-up: a run_eval, each server process, a worker."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
