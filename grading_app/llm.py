"""The only module that builds an openai client: judges and chat targets call models here.

Clients come from one factory with explicit timeouts, no redirects, the endpoint's retry
budget (the openai client's own exponential backoff with jitter on 429, 5xx and timeouts:
the one retry layer, RQ does not retry on top), and an optional allowlist of hosts
(EVALGATE_ALLOWED_ENDPOINT_HOSTS) so an admin cannot point workers at an address the
operator did not allow. API keys come from the environment variable an Endpoint names.
"""

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpcore2  # noqa: F401  (imported for forked work horses: see below)
import httpx2
import openai
import openai.resources.chat.chat  # imported for forked work horses, likewise
from django.conf import settings
from django.core.exceptions import ValidationError

from grading_app.models import Endpoint

T = TypeVar("T")
_clients: dict[tuple, openai.OpenAI] = {}
_clients_lock = threading.Lock()

# Each RQ job runs in a fresh fork of its worker, which imported this module (with the job
# modules) before forking: what is built here is inherited, what a client builds on first use
# is paid again by every job. httpx2 imports httpcore2 on its first Client (~30 ms), openai
# its chat resource on first use (~35 ms, chat targets), and every Client loads the CA store
# into a TLS context of its own (~20 ms): all three happen once, here. The context is httpx2's
# default one (verify=True, honouring SSL_CERT_FILE / SSL_CERT_DIR).
_tls_context = httpx2.create_ssl_context()
# The request options chat.completions.create() passes: bearer auth only (client.post()'s
# default would also allow an admin key).
_JUDGE_OPTIONS: openai.RequestOptions = {"security": {"bearer_auth": True}}


class JudgeError(Exception):
    """The judge could not give a valid answer (after retries): a grade error, never a pass."""


def check_endpoint_host(base_url: str) -> None:
    """Refuse endpoints outside the operator's allowlist (when one is configured)."""
    allowed = [h.lower() for h in getattr(settings, "EVALGATE_ALLOWED_ENDPOINT_HOSTS", [])]
    host = (urlparse(base_url).hostname or "").lower()
    if allowed and host not in allowed:
        raise ValidationError({"base_url": f"Host {host!r} is not in EVALGATE_ALLOWED_ENDPOINT_HOSTS."})


def client_for(endpoint: Endpoint, *, max_retries: int | None = None) -> openai.OpenAI:
    """A shared client per endpoint configuration (thread-safe; reused across calls)."""
    check_endpoint_host(endpoint.base_url)
    retries = endpoint.max_retries if max_retries is None else max_retries
    api_key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
    cache_key = (endpoint.base_url, api_key, endpoint.timeout_s, retries, endpoint.max_concurrency)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            http_client = httpx2.Client(
                verify=_tls_context,
                follow_redirects=False,
                timeout=httpx2.Timeout(endpoint.timeout_s, connect=min(10.0, endpoint.timeout_s)),
                limits=httpx2.Limits(max_connections=max(endpoint.max_concurrency, 1) * 2),
            )
            client = openai.OpenAI(
                base_url=endpoint.base_url,
                api_key=api_key or "unused",  # local servers need none; the client insists on one
                timeout=endpoint.timeout_s,
                max_retries=retries,
                http_client=http_client,
            )
            _clients[cache_key] = client
    return client


@dataclass(frozen=True)
class JudgeAnswer:
    score: float
    passed: bool
    rationale: str
    raw: dict[str, Any]
    input_tokens: int
    output_tokens: int


def parse_judge_json(content: str | None) -> tuple[float, bool, str, dict[str, Any]]:
    """Validate the judge's JSON answer; JudgeError names what is wrong."""
    try:
        data = json.loads(content or "")
    except ValueError:
        raise JudgeError(f"judge answer is not JSON: {(content or '')[:200]!r}") from None
    if not isinstance(data, dict):
        raise JudgeError("judge answer is not a JSON object")
    score, passed, rationale = data.get("score"), data.get("passed"), data.get("rationale", "")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise JudgeError(f"judge score must be a number from 0 to 1, got {score!r}")
    if not isinstance(passed, bool):
        raise JudgeError(f"judge 'passed' must be true or false, got {passed!r}")
    if not isinstance(rationale, str):
        raise JudgeError("judge rationale must be text")
    return float(score), passed, rationale, data


def judge(endpoint: Endpoint, model: str, prompt: str) -> JudgeAnswer:
    """Ask a judge model; returns its validated answer or raises JudgeError.

    Transport faults (429, 5xx, timeouts) are retried by the openai client itself. An answer
    that arrives but is not valid (not JSON, a score out of range) is a different fault:
    the judge is asked again, at most ``max_retries`` more times, and then it is an error.
    """
    (score, passed, rationale, raw), usage = ask_json(endpoint, model, prompt, parse_judge_json)
    return JudgeAnswer(
        score=score,
        passed=passed,
        rationale=rationale,
        raw=raw,
        input_tokens=token_count(usage, "prompt_tokens"),
        output_tokens=token_count(usage, "completion_tokens"),
    )


def ask_json(
    endpoint: Endpoint, model: str, prompt: str, parse: Callable[[str | None], T]
) -> tuple[T, dict[str, Any]]:
    """One prompt to a model asked for a JSON object (temperature 0); returns ``parse`` of its
    answer and the usage. Judges and simulated users ask this way. ``parse`` raises JudgeError
    for an answer that is not what was asked: asked again, at most ``max_retries`` more times."""
    try:
        client = client_for(endpoint)
    except ValidationError as exc:  # the operator's allowlist refuses this endpoint
        raise JudgeError("; ".join(exc.messages)) from None
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "response_format": {"type": "json_object"},
    }
    problem = ""
    for _ in range(endpoint.max_retries + 1):
        try:
            # The openai client's own request path (its retries, timeouts, auth, error types),
            # called as chat.completions.create() calls it, without that method's per-call work:
            # re-validating these literal params against its TypedDicts and building a
            # ChatCompletion model of which we read three fields (~0.5 of its ~1.2 ms per call).
            data = client.post("/chat/completions", body=body, cast_to=object, options=_JUDGE_OPTIONS)
        except openai.APIError as exc:
            raise JudgeError(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # a 200 whose body is not JSON at all (a proxy's HTML page)
            problem = f"{type(exc).__name__}: {exc}"
            continue
        try:
            content, usage = completion_parts(data)
            return parse(content), usage
        except JudgeError as exc:
            problem = str(exc)
            continue
    raise JudgeError(problem)


def completion_parts(data: Any) -> tuple[str | None, dict[str, Any]]:
    """The first choice's message content and the usage of a chat completion body (as JSON)."""
    if not isinstance(data, dict):
        raise JudgeError(f"the endpoint's answer is not a chat completion: {str(data)[:200]!r}")
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    usage = data.get("usage")
    return (content if isinstance(content, str) else None), (usage if isinstance(usage, dict) else {})


def token_count(usage: dict[str, Any], name: str) -> int:
    """A count from a completion's usage (0 when the endpoint sent none, or nonsense)."""
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class EmbeddingError(Exception):
    """The endpoint gave no valid embeddings (after retries): a grade error, never a pass."""


def embed(endpoint: Endpoint, model: str, texts: list[str]) -> list[list[float]]:
    """One embedding per text, in order, from the endpoint's OpenAI-compatible /embeddings."""
    try:
        client = client_for(endpoint)
        response = client.embeddings.create(model=model, input=texts, encoding_format="float")
    except (openai.APIError, ValueError, ValidationError) as exc:
        raise EmbeddingError(f"{type(exc).__name__}: {exc}") from None
    vectors = sorted(response.data, key=lambda item: item.index)
    if len(vectors) != len(texts) or not all(v.embedding for v in vectors):
        raise EmbeddingError(f"asked for {len(texts)} embeddings, got {len(vectors)}")
    return [list(v.embedding) for v in vectors]


@dataclass
class ChatResult:
    """What a chat target produced, with the production signals measured on the way."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0
    finish_reason: str = ""


RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


def chat(
    endpoint: Endpoint,
    model: str,
    messages: list[dict[str, Any]],
    *,
    params: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> ChatResult:
    """Stream a chat completion, measuring time to first token and end-to-end latency.

    Retries are counted here (the client's own are off for this call) because the retry
    count of a candidate is a production signal gates can budget.
    """
    client = client_for(endpoint, max_retries=0)
    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            return _stream(client, model, messages, params or {}, tools, started, attempt)
        except RETRYABLE:
            if attempt >= endpoint.max_retries:
                raise
            attempt += 1
            # Exponential backoff with full jitter, capped, as the openai client does.
            time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random()))


def _stream(
    client: openai.OpenAI,
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    tools: list[dict[str, Any]] | None,
    started: float,
    retries: int,
) -> ChatResult:
    result = ChatResult(retries=retries)
    calls: dict[int, dict[str, Any]] = {}
    content: list[str] = []
    extra = {"tools": tools} if tools else {}
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        **params,
        **extra,
    )
    for chunk in stream:
        if chunk.usage:
            result.input_tokens = chunk.usage.prompt_tokens or 0
            result.output_tokens = chunk.usage.completion_tokens or 0
        for choice in chunk.choices or []:
            delta = choice.delta
            if result.ttft_ms is None and (delta.content or delta.tool_calls):
                result.ttft_ms = (time.perf_counter() - started) * 1000
            if delta.content:
                content.append(delta.content)
            for piece in delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = piece.id or call["id"]
                if piece.function:
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
            if choice.finish_reason:
                result.finish_reason = choice.finish_reason
    result.latency_ms = (time.perf_counter() - started) * 1000
    result.content = "".join(content)
    result.tool_calls = [calls[i] for i in sorted(calls)]
    return result
