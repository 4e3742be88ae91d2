"""The http target: POST the case to the team's own service, which answers output, trace, metrics.

Request body: {"case": key, "input": {...}, "tier": ..., "failure_class": ...}.
Response body: {"output": text or object, "trace": [...], "metrics": {...}} (metrics optional;
latency is measured here when the service does not report it).

A multi-turn case posts once per user turn, the same body plus ``conversation_id`` (one per
conversation), ``turn`` (1, 2, ...) and ``messages`` (the conversation so far as chat messages,
ending with the user's new turn); the service answers that turn in the same response shape.
"""

import json
import os
import time
import uuid
from typing import Any

import httpx2
from django.core.exceptions import ValidationError

from grading_app.conversations import Turn
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


def conversation(target: Target, case: dict[str, Any]) -> Any:
    """A ``take_turn`` for one conversation of ``case``: each call posts one user turn."""
    conversation_id = uuid.uuid4().hex

    def take_turn(messages: list[dict[str, Any]], number: int) -> Turn:
        produced = produce(
            target, {**case, "conversation_id": conversation_id, "turn": number, "messages": messages}
        )
        if produced.output is None:
            return Turn(produced)
        content = produced.output if isinstance(produced.output, str) else json.dumps(produced.output)
        return Turn(produced, [{"role": "assistant", "content": content}])

    return take_turn
