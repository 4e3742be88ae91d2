"""The one signal grading_app sends upstream: a run has finished (any final status).

gates_app listens to compute a check's verdict, so grading never imports gates.
Sent inside the finaliser's transaction with ``run`` (the Run instance).
"""

from django.dispatch import Signal

run_finished = Signal()
