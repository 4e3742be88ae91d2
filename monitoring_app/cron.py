"""Periodic jobs of production monitoring (scheduled by gates_app.cron for `manage.py rqcron`)."""


def assemble_quiet_traces() -> str:
    """Cron job: OTLP traces whose root span never arrived are stored from what did."""
    from monitoring_app.ingest import assemble_quiet_traces as assemble

    return str(assemble())


def purge_expired_traces() -> str:
    """Cron job: each source's traces past their retention are deleted."""
    from monitoring_app.ingest import purge_expired_traces as purge

    return str(purge())


def evaluate_monitors() -> str:
    """Cron job: each monitor's last complete window against its reference; alerts that fired."""
    from monitoring_app.drift import evaluate_all

    return str(evaluate_all())


def retry_stale_samples() -> str:
    """Cron job: samples whose grading job was lost are enqueued again."""
    from monitoring_app.online import retry_stale_samples as retry

    return str(retry())
