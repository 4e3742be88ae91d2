"""promptfoo configs and test files (see suite.py for how a config becomes cases)."""

from datasets_app.importers.promptfoo.suite import read

__all__ = ["read"]
