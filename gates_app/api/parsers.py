"""The API's JSON parser: bounded, decompressing, and strict about what PostgreSQL can store.

Every body is refused at the boundary, in the JSON error shape and before anything is written,
when it is larger than the request limit (413, compressed or not), nested deeper than
MAX_DEPTH, holds a string longer than MAX_STRING, a NUL character or a lone surrogate (which no
database column can hold), or NaN/Infinity (which JSON does not have). Each refusal names the
field path (``outputs[3].trace[0].content``).
"""

import json
import re
import zlib
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64
MAX_STRING = 16 * 1024 * 1024  # characters; a whole output or document, not a whole run
_BAD_CHARACTERS = {0: "a NUL character (\\u0000)"}


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int) -> None:
        mib = limit / (1024 * 1024)
        super().__init__(
            f"The request body is larger than this server's limit of {mib:g} MiB "
            "(EVALGATE_MAX_REQUEST_MB). Upload outputs in pages (see `evalgate check`), or compress them."
        )
        self.limit = limit


def request_limit() -> int:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def decompress(data: bytes, encoding: str) -> bytes:
    """gzip (or deflate) bodies, decompressed no further than the request limit."""
    limit = request_limit()
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(
        encoding
    )
    if wbits is None:
        raise ParseError(f"Unsupported Content-Encoding {encoding!r}: send gzip, deflate or none.")
    decompressor = zlib.decompressobj(wbits)
    try:
        body = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ParseError(f"The body is not valid {encoding} data: {exc}") from None
    if len(body) > limit or decompressor.unconsumed_tail:
        raise RequestTooLarge(limit)
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def string_problem(text: str) -> str:
    if len(text) > MAX_STRING:
        return f"a string of {len(text):,} characters (the limit is {MAX_STRING:,})"
    if "\x00" in text:
        return _BAD_CHARACTERS[0]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not text"
    return ""


def _path(entry: tuple | None) -> str:
    """The field path of a stack entry, rebuilt from its parents only when there is an error."""
    parts = []
    while entry is not None:
        _, _, parent, key = entry
        if parent is not None:
            parts.append(key)
        entry = parent
    out = ""
    for part in reversed(parts):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


# A string of the parsed body can hold NUL or a lone surrogate only through these escapes (or a raw
# NUL): a body without any has no string to check one by one.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def strings_need_checking(text: str) -> bool:
    """False when no string of the JSON ``text`` can hold a problem string_problem looks for."""
    return len(text) > MAX_STRING or "\x00" in text or _SUSPECT_ESCAPE.search(text) is not None


def check_document(value: Any, *, check_strings: bool = True) -> None:
    """Walk the parsed body once, without recursion (depth is what is being bounded); strings
    are checked unless the raw text showed none of them can hold a problem."""
    stack: list[tuple[Any, int, Any, Any]] = [(value, 0, None, None)]
    while stack:
        entry = stack.pop()
        node, depth = entry[0], entry[1]
        if isinstance(node, str):
            if not check_strings:
                continue
            if problem := string_problem(node):
                raise ValidationError({_path(entry): [f"Holds {problem}."]})
            continue
        if not isinstance(node, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise ValidationError({_path(entry): [f"Nested deeper than {MAX_DEPTH} levels."]})
        if isinstance(node, dict):
            for key, child in node.items():
                if check_strings and (problem := string_problem(key)):
                    raise ValidationError({f"{_path(entry)}.<key>": [f"A key holds {problem}."]})
                stack.append((child, depth + 1, entry, key))
        else:
            stack.extend((child, depth + 1, entry, index) for index, child in enumerate(node))


class SafeJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        request = (parser_context or {}).get("request")
        data = stream.read()
        encoding = (
            (request.META.get("HTTP_CONTENT_ENCODING", "") if request is not None else "").strip().lower()
        )
        if encoding and encoding != "identity":
            data = decompress(data, encoding)
        elif len(data) > request_limit():
            raise RequestTooLarge(request_limit())
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The body is not UTF-8 (byte {exc.start}).") from None
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise ValidationError({"body": [f"Nested deeper than {MAX_DEPTH} levels."]}) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        check_document(value, check_strings=strings_need_checking(text))
        return value
