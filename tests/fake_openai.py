"""A small OpenAI-compatible HTTP server on 127.0.0.1 that the real openai client talks to in tests.

Start it, point ``openai.OpenAI(base_url=fake.base_url, api_key="test")`` at it, and script what the
"model" answers. The HTTP, retry, streaming and parsing paths of the client then run for real.

    with FakeOpenAI(latency_s=0.05) as fake:
        fake.script(text("hello"), json_reply({"passed": True}), fault("429"), "plain str is text")
        fake.default(text("ok"))           # served whenever the script is empty
        fake.faults(rate=0.3, seed=1)      # deterministic fault injection on top of the replies
        fake.responder(lambda body: ...)   # an answer computed from the request (script empty)

Replies (frozen dataclasses; build them with the helper functions):

- ``text(content, prompt_tokens=None, completion_tokens=None, finish_reason="stop")`` -> TextReply.
  A bare ``str`` given to ``script()`` or ``default()`` means the same. Token counts left as None
  are estimated at ~4 characters per token (prompt: the request's message texts).
- ``json_reply(obj, ...)`` -> TextReply whose content is ``json.dumps(obj)``.
- ``tool_calls(("name", {"arg": 1}), ToolCall("other", {}), content=None)`` -> ToolCallReply;
  finish_reason is "tool_calls" and the arguments travel as a JSON string, as OpenAI sends them.
- ``fault(kind, seconds=5.0, content="I think it passed")`` -> FaultReply, kind one of:
  "429"            HTTP 429 with ``Retry-After: 0`` and ``retry-after-ms: 1``. The openai client
                   ignores a zero Retry-After (it would back off ~0.5 s); retry-after-ms makes the
                   retry immediate.
  "500"            HTTP 500 (the client retries it after its own ~0.5 s backoff).
  "timeout"        waits ``seconds`` before answering with the default reply, so a client timeout
                   shorter than that fires. stop() cuts the wait short.
  "bad_json"       HTTP 200, a normal completion whose content is prose, not JSON.
  "malformed_body" HTTP 200 whose body is not JSON at all (the client's JSON decoding fails).

Unscripted requests (empty queue, no default) get HTTP 500 with ``x-should-retry: false`` and a
message saying so: a test that forgot to script fails loudly instead of passing on a made-up answer.

Injected faults (``faults()``) replace the reply without consuming the script, so a client retry
gets the scripted reply: they model transient trouble, the script models what the model says.
The same seed gives the same fault sequence for the same order of requests.

Endpoints: POST /v1/chat/completions (``stream: true`` answers with SSE chunks like OpenAI's,
including a usage chunk when ``stream_options.include_usage`` is true; ``response_format`` and other
fields are accepted and recorded), POST /v1/embeddings (deterministic vectors, below), GET /v1/models.

Embeddings are not scripted: each input text gets ``embedding_for(text)``, a unit vector of
``EMBEDDING_SIZE`` hashed word counts, so texts sharing words are close and the same text always
gets the same vector. Injected 429 and 500 faults (``faults()``) apply to it; scripted replies do not.

Timing: every request waits ``latency_s`` before its answer. A stream sends its headers at once,
then waits ``first_token_delay_s`` (default: ``latency_s``) before the first chunk, so the time to
first token is measurable, and ``chunk_delay_s`` between chunks.

Observations: ``requests`` (one dict per request: method, path, lower-cased headers, body as parsed
JSON, the reply served and whether it was an injected fault), ``calls``, ``in_flight`` and
``max_in_flight``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

FAULT_KINDS = ("429", "500", "timeout", "bad_json", "malformed_body")
MALFORMED_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass(frozen=True)
class TextReply:
    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class ToolCallReply:
    tool_calls: tuple[ToolCall, ...]
    content: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class FaultReply:
    kind: str
    seconds: float = 5.0  # "timeout" only: how long the answer is held back
    content: str = "I think it passed"  # "bad_json" only: the prose served instead of JSON


Reply = TextReply | ToolCallReply | FaultReply


def text(
    content: str,
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    finish_reason: str = "stop",
) -> TextReply:
    return TextReply(content, prompt_tokens, completion_tokens, finish_reason)


def json_reply(obj: Any, **usage: int) -> TextReply:
    return TextReply(json.dumps(obj), **usage)


def tool_calls(
    *calls: ToolCall | tuple[str, dict[str, Any]],
    content: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> ToolCallReply:
    built = tuple(call if isinstance(call, ToolCall) else ToolCall(*call) for call in calls)
    if not built:
        raise ValueError("a tool-call reply needs at least one call")
    return ToolCallReply(built, content, prompt_tokens, completion_tokens)


def fault(kind: str, *, seconds: float = 5.0, content: str = "I think it passed") -> FaultReply:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
    return FaultReply(kind, seconds, content)


EMBEDDING_SIZE = 64
_WORD = re.compile(r"\w+")


def embedding_for(text: str) -> list[float]:
    """A deterministic unit vector for ``text``: its lower-cased words hashed into buckets."""
    vector = [0.0] * EMBEDDING_SIZE
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        # Signed buckets keep unrelated words from all pointing the same way.
        vector[digest[0] % EMBEDDING_SIZE] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def _embeddings(body: dict[str, Any], model: str) -> dict[str, Any] | None:
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return None
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding_for(text)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(_tokens(len(t)) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model") or model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _as_reply(reply: Reply | str) -> Reply:
    if isinstance(reply, str):
        return TextReply(reply)
    if isinstance(reply, TextReply | ToolCallReply | FaultReply):
        return reply
    raise TypeError(f"not a reply: {reply!r} (use text(), json_reply(), tool_calls() or fault())")


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def _prompt_chars(body: dict[str, Any]) -> int:
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
    return chars


def _usage(reply: TextReply | ToolCallReply, body: dict[str, Any]) -> dict[str, int]:
    if isinstance(reply, TextReply):
        completion_chars = len(reply.content)
    else:
        completion_chars = len(reply.content or "") + sum(
            len(call.name) + len(json.dumps(call.arguments)) for call in reply.tool_calls
        )
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _tokens(_prompt_chars(body))
    completion = reply.completion_tokens
    if completion is None:
        completion = _tokens(completion_chars)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _call_id(call: ToolCall, call_no: int, index: int) -> str:
    return call.id or f"call_fake_{call_no}_{index}"


def _completion(
    reply: TextReply | ToolCallReply, body: dict[str, Any], model: str, call_no: int
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    finish_reason = "tool_calls"
    if isinstance(reply, TextReply):
        finish_reason = reply.finish_reason
    else:
        message["tool_calls"] = [
            {
                "id": _call_id(call, call_no, index),
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for index, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fake-{call_no}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": _usage(reply, body),
    }


def _content_pieces(content: str) -> list[str]:
    # Word-sized pieces with their leading space, roughly how a tokenizer streams prose.
    return re.findall(r"\s*\S+|\s+", content)


def _argument_pieces(arguments: str, size: int = 8) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _stream_deltas(reply: TextReply | ToolCallReply, call_no: int) -> list[dict[str, Any]]:
    """The deltas OpenAI would stream for this reply, in order (finish chunk not included)."""
    deltas: list[dict[str, Any]] = []
    calls = reply.tool_calls if isinstance(reply, ToolCallReply) else ()
    if reply.content is not None or not calls:
        deltas.append({"role": "assistant", "content": "", "refusal": None})
        deltas.extend({"content": piece} for piece in _content_pieces(reply.content or ""))
    for index, call in enumerate(calls):
        opening = {
            "index": index,
            "id": _call_id(call, call_no, index),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        # Like OpenAI: with no content, the role rides on the first tool-call delta.
        first = {"role": "assistant", "content": None, "refusal": None} if not deltas else {}
        deltas.append({**first, "tool_calls": [opening]})
        deltas.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _argument_pieces(json.dumps(call.arguments))
        )
    return deltas


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a held-back "timeout" answer must not hold up stop()
    request_queue_size = 128  # parallel tests open many connections at once
    fake: FakeOpenAI

    def process_request(self, request: Any, client_address: Any) -> None:
        self.fake._open_connection(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.fake._close_connection(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or stopped reading a stream hangs up on us; that is expected.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the client expects
    disable_nagle_algorithm = True  # headers and body go out as two writes; no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def _request_entry(self, body: Any) -> dict[str, Any]:
        headers = {name.lower(): value for name, value in self.headers.items()}
        return {"method": self.command, "path": self.path, "headers": headers, "body": body}

    def do_GET(self) -> None:
        fake = self.server.fake
        with fake._tracking():
            fake._record(self._request_entry(None))
            if not fake._sleep(fake.latency_s):
                return
            if self.path.rstrip("/") == "/v1/models":
                model = {"id": fake.model, "object": "model", "created": 0, "owned_by": "evalgate-tests"}
                self._send_json(200, {"object": "list", "data": [model]})
            else:
                self._send_json(404, _error(f"no route GET {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with fake._tracking():
            if self.path.rstrip("/") == "/v1/embeddings" and isinstance(body, dict):
                self._answer_embeddings(body)
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                fake._record(self._request_entry(body))
                self._send_json(404, _error(f"no route POST {self.path}", "invalid_request_error"))
                return
            if not isinstance(body, dict):
                fake._record(self._request_entry(body))
                self._send_json(400, _error("request body is not a JSON object", "invalid_request_error"))
                return
            reply, call_no = fake._next_reply(self._request_entry(body))
            self._answer_chat(reply, body, call_no)

    def _answer_embeddings(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        injected, _ = fake._next_fault(self._request_entry(body))
        if not fake._sleep(fake.latency_s):
            return
        if injected is not None and injected.kind in ("429", "500"):
            self._answer_chat(injected, body, fake.calls)  # the same HTTP error a chat call gets
            return
        answer = _embeddings(body, fake.model)
        if answer is None:
            self._send_json(
                400, _error("input must be a string or a list of strings", "invalid_request_error")
            )
        else:
            self._send_json(200, answer)

    def _answer_chat(self, reply: Reply | None, body: dict[str, Any], call_no: int) -> None:
        fake = self.server.fake
        stream = bool(body.get("stream"))
        if isinstance(reply, FaultReply) and reply.kind == "timeout":
            if not fake._sleep(reply.seconds):
                return
            # Held back long enough for the client to give up; whoever is still there gets the default.
            reply = fake._default
            if isinstance(reply, FaultReply) and reply.kind == "timeout":
                return
        if isinstance(reply, FaultReply) and reply.kind == "bad_json":
            reply = TextReply(reply.content)
        # A stream spends its latency before the first chunk instead (first_token_delay_s).
        streams = stream and isinstance(reply, TextReply | ToolCallReply)
        if not streams and not fake._sleep(fake.latency_s):
            return

        if reply is None:
            message = "FakeOpenAI has no scripted reply left and no default(): script one in the test"
            self._send_json(500, _error(message, "server_error"), {"x-should-retry": "false"})
        elif isinstance(reply, TextReply | ToolCallReply):
            if stream:
                self._stream(reply, body, call_no)
            else:
                self._send_json(200, _completion(reply, body, body.get("model") or fake.model, call_no))
        elif reply.kind == "429":
            headers = {"Retry-After": "0", "retry-after-ms": "1"}
            message = "Rate limit reached (injected by FakeOpenAI)"
            self._send_json(429, _error(message, "requests", "rate_limit_exceeded"), headers)
        elif reply.kind == "500":
            self._send_json(500, _error("The server had an error (injected by FakeOpenAI)", "server_error"))
        elif stream:  # malformed_body
            self._start_stream()
            self._write_chunk(b"data: " + MALFORMED_BODY + b"\n\n")
            self._write_chunk(b"")
        else:  # malformed_body: says JSON, is not
            self._send_bytes(200, MALFORMED_BODY, "application/json")

    def _stream(self, reply: TextReply | ToolCallReply, body: dict[str, Any], call_no: int) -> None:
        fake = self.server.fake
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        envelope: dict[str, Any] = {
            "id": f"chatcmpl-fake-{call_no}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or fake.model,
            "system_fingerprint": "fp_fake",
        }
        if include_usage:
            envelope["usage"] = None  # OpenAI sends null usage on every chunk but the last

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        finish_reason = reply.finish_reason if isinstance(reply, TextReply) else "tool_calls"
        events = [{**envelope, "choices": [choice(delta)]} for delta in _stream_deltas(reply, call_no)]
        events.append({**envelope, "choices": [choice({}, finish_reason)]})
        if include_usage:
            events.append({**envelope, "choices": [], "usage": _usage(reply, body)})

        self._start_stream()
        delay = fake.first_token_delay_s if fake.first_token_delay_s is not None else fake.latency_s
        for event in events:
            if not fake._sleep(delay):
                return
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
            delay = fake.chunk_delay_s
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # the zero-length chunk ends the chunked body

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_fake_{self.server.fake.calls}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 with scripted replies, latency and faults."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        first_token_delay_s: float | None = None,
        chunk_delay_s: float = 0.0,
        model: str = "gpt-fake",
    ) -> None:
        # Read per request, so a test may change them on a running server.
        self.latency_s = latency_s
        self.first_token_delay_s = first_token_delay_s
        self.chunk_delay_s = chunk_delay_s
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._default: Reply | None = None
        self._respond: Callable[[dict[str, Any]], Reply | str | None] | None = None
        self._fault_rate = 0.0
        self._fault_kinds: tuple[str, ...] = ()
        self._fault_seconds = 5.0
        self._fault_rng = random.Random(0)
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> FakeOpenAI:
        if self._server is not None:
            raise RuntimeError("FakeOpenAI is already running")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        # A short poll interval keeps stop() quick: shutdown() waits for the loop to notice.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes held-back answers and latency sleeps
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would otherwise linger
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running: call start() or use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # Scripting

    def script(self, *replies: Reply | str) -> None:
        """Queue replies, served one per chat completion request in order."""
        built = [_as_reply(reply) for reply in replies]
        with self._lock:
            self._queue.extend(built)

    def default(self, reply: Reply | str | None) -> None:
        """The reply served when the script is empty (None: answer unscripted requests with an error)."""
        built = None if reply is None else _as_reply(reply)
        with self._lock:
            self._default = built

    def responder(self, respond: Callable[[dict[str, Any]], Reply | str | None] | None) -> None:
        """A function of each chat request's body that answers it when the script is empty (its
        None falls through to the default): a model whose answer depends on what it is asked."""
        with self._lock:
            self._respond = respond

    def faults(
        self,
        rate: float,
        kinds: Iterable[str] = ("429", "500", "timeout", "bad_json"),
        seed: int = 0,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        """Inject a fault into each chat request with probability `rate`, from a generator seeded anew.

        The script is not consumed by an injected fault. rate=0 turns injection off.
        """
        kinds = tuple(kinds)
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, got {kinds}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {rate}")
        with self._lock:
            self._fault_rate, self._fault_kinds, self._fault_seconds = rate, kinds, timeout_s
            self._fault_rng = random.Random(seed)

    @property
    def pending(self) -> int:
        """Scripted replies not served yet."""
        with self._lock:
            return len(self._queue)

    # Used by the request handler

    def _next_reply(self, request: dict[str, Any]) -> tuple[Reply | None, int]:
        with self._lock:
            injected = self._roll_fault_locked()
            if injected is not None:
                reply: Reply | None = injected
            else:
                reply = self._queue.popleft() if self._queue else self._responded(request) or self._default
            self._record_locked(request, reply, injected=injected is not None)
            return reply, self.calls

    def _responded(self, request: dict[str, Any]) -> Reply | None:
        if self._respond is None or not isinstance(request.get("body"), dict):
            return None
        reply = self._respond(request["body"])
        return None if reply is None else _as_reply(reply)

    def _roll_fault_locked(self) -> FaultReply | None:
        if self._fault_rate <= 0:
            return None
        # Two draws per request whatever the outcome, so request n always sees the same pair.
        roll, kind = self._fault_rng.random(), self._fault_rng.choice(self._fault_kinds)
        return FaultReply(kind, seconds=self._fault_seconds) if roll < self._fault_rate else None

    def _next_fault(self, request: dict[str, Any]) -> tuple[FaultReply | None, int]:
        """For requests that are not scripted (embeddings): an injected fault or None, recorded."""
        with self._lock:
            injected = self._roll_fault_locked()
            self._record_locked(request, injected, injected=injected is not None)
            return injected, self.calls

    def _record(self, request: dict[str, Any], reply: Reply | None = None, *, injected: bool = False) -> None:
        with self._lock:
            self._record_locked(request, reply, injected=injected)

    def _record_locked(self, request: dict[str, Any], reply: Reply | None, *, injected: bool) -> None:
        self.calls += 1
        self.requests.append({**request, "reply": reply, "injected": injected})

    @contextmanager
    def _tracking(self) -> Iterator[None]:
        """Count a request as in flight for as long as it is being answered."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def _sleep(self, seconds: float) -> bool:
        """Wait, unless the server is stopping; True means carry on answering."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _open_connection(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _close_connection(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
