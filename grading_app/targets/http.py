"""The http target: POST the case to the team's own service, which answers output, trace, metrics.

Request body: {"case": key, "input": {...}, "tier": ..., "failure_class": ...}.
Response body: {"output": text or object, "trace": [...], "metrics": {...}} (metrics optional;
latency is measured here when the service does not report it).
"""

import os
import time
from typing import Any

import httpx2
from django.core.exceptions import ValidationError

from grading_app.models import Target
from grading_app.outputs import parse_outputs
from grading_app.targets import Produced


def produce(target: Target, case: dict[str, Any]) -> Produced:
    config = target.config
    headers = {name: os.environ.get(env, "") for name, env in (config.get("headers_env") or {}).items()}
    started = time.perf_counter()
    try:
        with httpx2.Client(timeout=config.get("timeout_s", 30), follow_redirects=False) as client:
            response = client.post(config["url"], json=case, headers=headers)
        response.raise_for_status()
        body = response.json()
    except (httpx2.HTTPError, ValueError) as exc:
        return Produced(error=f"{type(exc).__name__}: {exc}"[:2000])
    latency_ms = (time.perf_counter() - started) * 1000
    if not isinstance(body, dict):
        return Produced(error="the service must answer a JSON object with output, trace and metrics")
    try:
        (item,) = parse_outputs(
            [
                {
                    "case": case["case"],
                    "output": body.get("output"),
                    "trace": body.get("trace"),
                    "metrics": body.get("metrics") or {},
                }
            ]
        )
    except ValidationError as exc:
        return Produced(error=f"invalid response from the service: {exc.messages[0]}")
    metrics = {"latency_ms": latency_ms, **item.metrics}
    return Produced(output=item.output, trace=item.trace, metrics=metrics, missing=item.output is None)
