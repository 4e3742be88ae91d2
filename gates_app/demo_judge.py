"""The demo's stand-in judge: a scripted OpenAI-compatible HTTP server on 127.0.0.1, not a model.

`manage.py demo` starts it for itself, in a thread, so the llm_judge grader has a judge to call
without an API key or a network. It answers POST /v1/chat/completions from a script file
(examples/demo/stand-in-judge.yaml): the first rule whose text appears in the judged output
decides, else the default answer. It binds 127.0.0.1 only and refuses to stand in for an
endpoint on any other host, so judge prompts never leave the machine.
"""

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from grading_app.judging import TAG_PREFIX

LOOPBACK = "127.0.0.1"
# The judged output sits between tags the prompt template names (grading_app.judging).
OUTPUT_BLOCK = re.compile(rf"<({re.escape(TAG_PREFIX)}[0-9a-f]+)>\n(.*)\n</\1>", re.DOTALL)


class ScriptError(ValueError):
    """The judge script file is unreadable or not in the expected shape."""


def _answer(raw: Any, where: str) -> dict[str, Any]:
    """One scripted judge answer, checked now rather than as a grade error later."""
    if not isinstance(raw, dict) or set(raw) != {"score", "passed", "rationale"}:
        raise ScriptError(f"{where}: an answer has exactly score, passed and rationale")
    score = raw["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise ScriptError(f"{where}.score: a number from 0 to 1")
    if not isinstance(raw["passed"], bool) or not isinstance(raw["rationale"], str):
        raise ScriptError(f"{where}: passed is true or false, rationale is text")
    return {"score": score, "passed": raw["passed"], "rationale": raw["rationale"]}


@dataclass(frozen=True)
class JudgeScript:
    """Scripted answers: (text the output contains, answer) rules in order, then a default."""

    rules: tuple[tuple[str, dict[str, Any]], ...]
    default: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> "JudgeScript":
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ScriptError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or set(data) - {"rules", "default"} or "default" not in data:
            raise ScriptError(f"{path}: a mapping with `rules` (optional) and `default`")
        rules = []
        for i, rule in enumerate(data.get("rules") or []):
            if not isinstance(rule, dict) or set(rule) != {"output_contains", "answer"}:
                raise ScriptError(f"{path}: rules[{i}] has exactly output_contains and answer")
            rules.append((str(rule["output_contains"]), _answer(rule["answer"], f"rules[{i}].answer")))
        return cls(tuple(rules), _answer(data["default"], "default"))

    def answer(self, prompt: str) -> dict[str, Any]:
        """The answer for one judge prompt; without the output tags, the whole prompt is read."""
        block = OUTPUT_BLOCK.search(prompt)
        output = block.group(2) if block else prompt
        return next((answer for text, answer in self.rules if text in output), self.default)


def _prompt(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return ""
    content = messages[-1].get("content")
    return content if isinstance(content, str) else ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the demo's own output is what a newcomer reads

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": "stand-in-judge", "object": "model", "created": 0, "owned_by": "evalgate-demo"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route GET {self.path}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route POST {self.path}")
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._error(400, "the request body is not a JSON object")
            return
        prompt = _prompt(body)
        content = json.dumps(self.server.script.answer(prompt))
        call = self.server.count()
        # Rough token counts (about four characters a token), so cost columns are not all zero.
        usage = {"prompt_tokens": len(prompt) // 4 + 1, "completion_tokens": len(content) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        message = {"role": "assistant", "content": content, "refusal": None}
        self._send(
            200,
            {
                "id": f"chatcmpl-stand-in-{call}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or "stand-in-judge",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage,
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a judge call in flight never holds up the demo's exit
    script: JudgeScript
    calls: int = 0
    _lock = threading.Lock()

    def count(self) -> int:
        with self._lock:  # one handler thread per request
            self.calls += 1
            return self.calls


def loopback_port(base_url: str) -> int:
    """The port of an endpoint URL the stand-in may serve; ValueError for any host but 127.0.0.1."""
    url = urlparse(base_url)
    if url.scheme != "http" or url.hostname != LOOPBACK:
        raise ValueError(f"the stand-in judge serves http://{LOOPBACK} only, not {base_url}")
    return url.port or 80


class StandInJudge:
    """Serve a JudgeScript on 127.0.0.1 in a background thread, until stop() (or the with block ends)."""

    def __init__(self, script: JudgeScript, port: int) -> None:
        self._server = _Server((LOOPBACK, port), _Handler)  # OSError when the port is taken
        self._server.script = script
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-judge", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def calls(self) -> int:
        return self._server.calls

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "StandInJudge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
