"""The `evalgate` command: a deploy script's client of the gate API (stdlib only, no Django).

Exit codes (DESIGN.md section 6): 0 release allowed, 1 fail, 3 inconclusive or awaiting
approval (or still pending when --wait ran out), 2 usage or connection errors.
"""

import argparse
import gzip
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, NoReturn

EXIT_ALLOWED, EXIT_FAIL, EXIT_ERROR, EXIT_UNDECIDED = 0, 1, 2, 3
POLL_INTERVAL_S = 1.0
REQUEST_TIMEOUT_S = 120  # a large page of outputs takes a while to validate and store
PAGE_SHARE = 0.8  # of the server's limit, uncompressed: each page fits once decompressed


class ClientError(Exception):
    """A usage, connection or API error: exit code 2 with this message."""


class TooLarge(ClientError):
    """The server refused the body as larger than its limit (HTTP 413)."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _request(method: str, url: str, token: str, body: Any = None, headers: dict | None = None) -> Any:
    """One API call; bodies go gzip-compressed (outputs with traces shrink about tenfold)."""
    data = gzip.compress(_encode(body), compresslevel=6) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
        request.add_header("Content-Encoding", "gzip")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read()).get("error", {})
        except (ValueError, AttributeError):
            error = {}
        message = error.get("message") or exc.reason
        details = error.get("details")
        suffix = f"\n{json.dumps(details, indent=2)}" if details else ""
        text = f"HTTP {exc.code} from {url}: {message}{suffix}"
        if exc.code == 413 and isinstance(details, dict) and isinstance(details.get("limit_bytes"), int):
            raise TooLarge(text, details["limit_bytes"]) from None
        raise ClientError(text) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise ClientError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def _config() -> tuple[str, str]:
    base = os.environ.get("EVALGATE_URL", "").rstrip("/")
    token = os.environ.get("EVALGATE_TOKEN", "")
    if not base or not token:
        raise ClientError("set EVALGATE_URL (e.g. https://evalgate.example.com) and EVALGATE_TOKEN")
    return base, token


def read_outputs(path: str) -> list[Any]:
    """One JSON object per line (blank lines skipped); errors name the line."""
    outputs = []
    try:
        # utf-8-sig: a byte-order mark (editors on Windows write one) is not part of the JSON.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    outputs.append(json.loads(line))
                except ValueError as exc:
                    raise ClientError(f"{path} line {number}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror}") from None
    return outputs


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def render_table(check: dict[str, Any]) -> str:
    """The rule table a human reads in a deploy log."""
    header = ["rule", "severity", "metric", "value", "baseline", "threshold", "95% interval", "n", "outcome"]
    lines = [header]
    for rule in check.get("rules") or []:
        lines.append(
            [
                rule.get("name", ""),
                rule.get("severity", ""),
                rule.get("metric", ""),
                _fmt(rule.get("value")),
                _fmt(rule.get("baseline")),
                _fmt(rule.get("threshold")),
                _fmt(rule.get("interval")),
                _fmt(rule.get("n")),
                rule.get("outcome", "").upper(),
            ]
        )
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(header))]
    out = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r['name']}: {r['note']}" for r in check.get("rules") or [] if r.get("note")]
    if notes:
        out += ["", "notes:", *notes]
    missing = check.get("missing_cases") or {}
    if missing.get("count"):
        shown = ", ".join(missing.get("keys") or [])
        more = f" (first {len(missing['keys'])})" if missing["count"] > len(missing.get("keys") or []) else ""
        out += ["", f"missing or errored cases ({missing['count']}){more}: {shown}"]
    allowed = "yes" if check.get("release_allowed") else "no"
    out += ["", f"verdict: {str(check.get('verdict', '')).upper()}   release allowed: {allowed}"]
    if check.get("admin_url"):
        out.append(f"details: {check['admin_url']}")
    return "\n".join(out)


def exit_code_for(check: dict[str, Any]) -> int:
    if check.get("release_allowed"):
        return EXIT_ALLOWED
    if check.get("verdict") == "fail":
        return EXIT_FAIL
    return EXIT_UNDECIDED  # inconclusive, warn awaiting approval, or still pending


def _wait(check: dict[str, Any], base: str, token: str, timeout_s: float, quiet: bool) -> dict[str, Any]:
    url = f"{base}/api/v1/checks/{check['id']}/"
    deadline = time.monotonic() + timeout_s
    while check.get("status") != "done" and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
        check = _request("GET", url, token)
        progress = check.get("progress") or {}
        if not quiet:
            print(
                f"\r{check.get('status')}: {progress.get('done', 0)}/{progress.get('total', 0)} cases",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if not quiet:
        print(file=sys.stderr)
    return check


def pages_of(outputs: list[Any], limit: int) -> list[list[Any]]:
    """Consecutive pages whose JSON stays under PAGE_SHARE of ``limit`` bytes each."""
    budget = max(1, int(limit * PAGE_SHARE))
    pages: list[list[Any]] = [[]]
    size = 0
    for item in outputs:
        item_size = len(_encode(item)) + 1
        if pages[-1] and size + item_size > budget:
            pages.append([])
            size = 0
        pages[-1].append(item)
        size += item_size
    return pages


def _post_in_pages(
    base: str, token: str, gate: str, body: dict, limit: int, headers: dict, quiet: bool
) -> Any:
    pages = pages_of(body["outputs"], limit)
    if len(pages) < 2:
        raise ClientError(f"one output alone is larger than the server's limit of {limit} bytes")
    if not quiet:
        print(f"outputs too large for one request: uploading them in {len(pages)} pages", file=sys.stderr)
    first = {**body, "outputs": pages[0], "outputs_pages": len(pages)}
    accepted = _request("POST", f"{base}/api/v1/gates/{gate}/checks/", token, first, headers)
    for number, page in enumerate(pages[1:], start=2):
        _request(
            "POST",
            f"{base}/api/v1/checks/{accepted['id']}/outputs/",
            token,
            {"page": number, "outputs": page},
        )
    return accepted


def cmd_check(args: argparse.Namespace) -> int:
    base, token = _config()
    body: dict[str, Any] = {"candidate": args.candidate}
    if args.trials is not None:
        body["trials"] = args.trials
    if args.outputs:
        body["outputs"] = read_outputs(args.outputs)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    gate = urllib.parse.quote(args.gate, safe="")
    try:
        accepted = _request("POST", f"{base}/api/v1/gates/{gate}/checks/", token, body, headers)
    except TooLarge as exc:
        if "outputs" not in body:
            raise
        accepted = _post_in_pages(base, token, gate, body, exc.limit, headers, args.json)
    if not args.json:
        print(f"check {accepted['id']}: {accepted.get('url', '')}", file=sys.stderr)
    check = _request("GET", f"{base}/api/v1/checks/{accepted['id']}/", token)
    if args.wait:
        check = _wait(check, base, token, args.timeout, args.json)
    return _show(check, args)


def _show(check: dict[str, Any], args: argparse.Namespace) -> int:
    print(json.dumps(check, indent=2) if args.json else render_table(check))
    if check.get("status") != "done" and not args.json:
        print(f"check {check['id']} is still {check.get('status')}; ask again with --wait", file=sys.stderr)
    return exit_code_for(check)


def cmd_wait(args: argparse.Namespace) -> int:
    """Read an existing check (a CI re-run, another job's check), waiting for its verdict."""
    base, token = _config()
    check = _request("GET", f"{base}/api/v1/checks/{args.check_id}/", token)
    return _show(_wait(check, base, token, args.timeout, args.json), args)


def cmd_verdict(args: argparse.Namespace) -> int:
    """The latest check of a candidate on a gate, as it stands (or once decided, with --wait)."""
    base, token = _config()
    gate = urllib.parse.quote(args.gate, safe="")
    candidate = urllib.parse.quote(args.candidate, safe="")
    check = _request("GET", f"{base}/api/v1/gates/{gate}/verdict/?candidate={candidate}", token)
    if args.wait:
        check = _wait(check, base, token, args.timeout, args.json)
    return _show(check, args)


def production_exit_code(body: dict[str, Any]) -> int:
    """Post-release: pass or warn keep the release (0), fail means roll back (1), inconclusive
    means not enough evidence yet (3): ask again later."""
    verdict = body.get("verdict")
    if verdict in ("pass", "warn"):
        return EXIT_ALLOWED
    return EXIT_FAIL if verdict == "fail" else EXIT_UNDECIDED


def cmd_production(args: argparse.Namespace) -> int:
    """The post-release verdict on a shipped candidate's live traffic."""
    base, token = _config()
    gate = urllib.parse.quote(args.gate, safe="")
    query = {"candidate": args.candidate, **({"baseline": args.baseline} if args.baseline else {})}
    body = _request("GET", f"{base}/api/v1/gates/{gate}/production/?{urllib.parse.urlencode(query)}", token)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        table = render_table({"rules": body.get("rules")}).rsplit("\n\nverdict:", 1)[0]
        window = body.get("window") or {}
        print(table)
        print(
            f"\n{body.get('traces', 0)} trace(s) of {body.get('candidate')} against "
            f"{body.get('baseline_traces', 0)} of {body.get('baseline') or '(no earlier release)'}"
            + (f", {window['start']} to {window['end']}" if window else "")
        )
        if body.get("note"):
            print(body["note"])
        print(f"production verdict: {str(body.get('verdict', '')).upper()}")
    return production_exit_code(body)


def _decide(args: argparse.Namespace, action: str) -> int:
    base, token = _config()
    check = _request(
        "POST", f"{base}/api/v1/checks/{args.check_id}/{action}/", token, {"reason": args.reason}
    )
    print(json.dumps(check, indent=2) if args.json else render_table(check))
    return exit_code_for(check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalgate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="ask whether a candidate may ship")
    check.add_argument("gate", help="gate slug")
    check.add_argument("--candidate", required=True, help="release id, e.g. a git sha")
    check.add_argument("--outputs", help="JSONL file: one {case, output, trace, metrics} per line")
    check.add_argument("--trials", type=int, help="without --outputs: times the gate's target runs each case")
    check.add_argument("--wait", action="store_true", help="poll until the verdict is decided")
    check.add_argument("--timeout", type=float, default=900, help="seconds to wait (default 900)")
    check.add_argument("--idempotency-key", help="retry-safe key for this request")
    check.add_argument("--json", action="store_true", help="print the check as JSON")
    check.set_defaults(func=cmd_check)
    wait = sub.add_parser("wait", help="wait for an existing check's verdict")
    wait.add_argument("check_id", type=int)
    wait.add_argument("--timeout", type=float, default=900, help="seconds to wait (default 900)")
    wait.add_argument("--json", action="store_true", help="print the check as JSON")
    wait.set_defaults(func=cmd_wait)
    verdict = sub.add_parser("verdict", help="the latest check of a candidate on a gate")
    verdict.add_argument("gate", help="gate slug")
    verdict.add_argument("--candidate", required=True, help="release id, e.g. a git sha")
    verdict.add_argument("--wait", action="store_true", help="poll until the verdict is decided")
    verdict.add_argument("--timeout", type=float, default=900, help="seconds to wait (default 900)")
    verdict.add_argument("--json", action="store_true", help="print the check as JSON")
    verdict.set_defaults(func=cmd_verdict)
    production = sub.add_parser("production", help="post-release: judge a shipped candidate's live traffic")
    production.add_argument("gate", help="gate slug")
    production.add_argument("--candidate", required=True, help="the release that shipped")
    production.add_argument("--baseline", help="the release to compare with (default: the one before)")
    production.add_argument("--json", action="store_true", help="print the verdict as JSON")
    production.set_defaults(func=cmd_production)
    for action, text in (
        ("approve", "acknowledge a warn verdict"),
        ("override", "owner: release a failed verdict"),
    ):
        decide = sub.add_parser(action, help=text)
        decide.add_argument("check_id", type=int)
        decide.add_argument("--reason", required=True)
        decide.add_argument("--json", action="store_true")
        decide.set_defaults(func=lambda a, action=action: _decide(a, action))
    return parser


def main(argv: list[str] | None = None) -> NoReturn:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        sys.exit(EXIT_ERROR if exc.code else 0)
    try:
        code = args.func(args)
    except ClientError as exc:
        print(f"evalgate: {exc}", file=sys.stderr)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        code = EXIT_ERROR
    sys.exit(code)


if __name__ == "__main__":
    main()
