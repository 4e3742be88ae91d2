"""JavaScript's RegExp (no flags, as promptfoo's `regex` assertion builds it) as a Python pattern
that decides exactly as JavaScript does, matched on the text's UTF-16 code units.

Written from ECMA-262 (the pattern grammar with Annex B, which Node applies to patterns without
the `u` flag) and checked against Node by tests/grading/test_jsregex_differential.py. Python's
`re` reads the same text otherwise in places: `$` also matches before a final newline, `\\d`,
`\\w`, `\\b` and `\\s` take other Unicode characters, `.` takes `\\r`, U+2028 and U+2029, `\\a`
or `\\z` are escapes, `{,3}` is a quantifier, and an astral character is one character where
JavaScript sees two code units. So nothing is passed through: every literal, escape and class is
written out as the code units it stands for, and the text is split into code units too.

A pattern JavaScript refuses raises JsSyntaxError; a valid pattern whose meaning this cannot
carry exactly (a backreference, a lookbehind of varying width) raises NotCarried.
"""

import functools
import re

MAX_UNIT = 0xFFFF
Ranges = list[tuple[int, int]]

DIGITS: Ranges = [(0x30, 0x39)]
WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
# WhiteSpace and LineTerminator (ECMA-262 \s): U+FEFF is one; U+001C..U+001F and U+0085,
# which Python's \s takes, are not.
SPACE: Ranges = [
    (0x09, 0x0D),
    (0x20, 0x20),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
]
LINE_TERMINATORS: Ranges = [(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
CONTROL_ESCAPES = {"t": 0x09, "n": 0x0A, "v": 0x0B, "f": 0x0C, "r": 0x0D}
SYNTAX = set("^$\\.*+?()[]{}|")
NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
# Counts beyond this are not carried: JavaScript reads huge ones as unbounded, Python refuses them.
MAX_COUNT = 65535


class JsSyntaxError(ValueError):
    """JavaScript's RegExp refuses the pattern (promptfoo fails the assertion)."""


class NotCarried(ValueError):
    """The pattern is valid JavaScript, but no Python pattern here decides exactly as it does."""


def utf16(text: str) -> str:
    """``text`` as JavaScript sees it: an astral character becomes its two surrogate units."""
    if text.isascii() or all(ord(ch) <= MAX_UNIT for ch in text):
        return text
    data = text.encode("utf-16-le", "surrogatepass")
    return "".join(chr(int.from_bytes(data[i : i + 2], "little")) for i in range(0, len(data), 2))


def complement(ranges: Ranges) -> Ranges:
    found, start = [], 0
    for low, high in sorted(ranges):
        if low > start:
            found.append((start, low - 1))
        start = max(start, high + 1)
    if start <= MAX_UNIT:
        found.append((start, MAX_UNIT))
    return found


CLASS_ESCAPES = {"d": DIGITS, "w": WORD, "s": SPACE}
CLASS_ESCAPES |= {name.upper(): complement(ranges) for name, ranges in list(CLASS_ESCAPES.items())}


def _unit(code: int) -> str:
    char = chr(code)
    if char.isascii() and char.isalnum():
        return char
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def python_class(ranges: Ranges, negate: bool = False) -> str:
    """A Python character class of exactly these code units (one that matches none: (?!))."""
    merged: Ranges = []
    for low, high in sorted(complement(ranges) if negate else ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    if not merged:
        return "(?!)"
    body = "".join(_unit(lo) if lo == hi else f"{_unit(lo)}-{_unit(hi)}" for lo, hi in merged)
    return f"[{body}]"


_WORD = python_class(WORD)
WORD_BOUNDARY = f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))"
# Written out rather than Python's \\B, which (before Python 3.14) never matches an empty text.
NOT_WORD_BOUNDARY = f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))"


class _Parser:
    """A recursive-descent reader of the pattern's code units, writing the Python pattern."""

    def __init__(self, pattern: str) -> None:
        self.src = utf16(pattern)
        self.pos = 0
        self.groups, self.names = _count_groups(self.src)
        # What cannot be carried is noted and the parse goes on, so that a pattern JavaScript
        # refuses is reported as refused whatever else it holds.
        self.lossy: list[str] = []

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.src[i] if i < len(self.src) else ""

    def error(self, message: str) -> JsSyntaxError:
        return JsSyntaxError(f"{message} (at offset {self.pos})")

    def disjunction(self) -> str:
        branches = [self.alternative()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.alternative())
        return "|".join(branches)

    def alternative(self) -> str:
        out = []
        while self.peek() not in ("", "|", ")"):
            out.append(self.term())
        return "".join(out)

    def term(self) -> str:
        char = self.peek()
        quantifiable = True
        lookahead = False
        if char in ("^", "$"):
            self.pos += 1
            atom, quantifiable = ("\\A" if char == "^" else "\\Z"), False
        elif char == "\\" and self.peek(1) in ("b", "B"):
            self.pos += 2
            atom, quantifiable = (
                (WORD_BOUNDARY if self.src[self.pos - 1] == "b" else NOT_WORD_BOUNDARY),
                False,
            )
        elif char == "(":
            atom, kind = self.group()
            quantifiable = kind != "lookbehind"
            lookahead = kind == "lookahead"
        elif char in ("*", "+", "?") or (char == "{" and self.braced(self.pos) is not None):
            raise self.error("Nothing to repeat")
        elif char == ".":
            self.pos += 1
            atom = python_class(LINE_TERMINATORS, negate=True)
        elif char == "[":
            atom = self.char_class()
        elif char == "\\":
            atom = self.atom_escape()
        else:
            self.pos += 1
            atom = _unit(ord(char))
        quantifier = self.quantifier()
        if quantifier is None:
            return atom
        if not quantifiable:
            raise self.error("Nothing to repeat")
        if lookahead:
            # Annex B lets a lookahead be repeated: an assertion matches no text, so repeating it
            # at least once is the assertion, and allowing none is no assertion at all.
            return atom if not quantifier.startswith(("*", "?", "{0")) else "(?:)"
        return f"(?:{atom}){quantifier}"

    def braced(self, start: int) -> tuple[int, int | None, int] | None:
        """A `{n}`, `{n,}` or `{n,m}` at ``start``: (min, max, end), else None (then `{` is a
        literal, as Annex B reads it: `{,3}` and `a{x}` are text)."""
        match = re.compile(r"\{([0-9]+)(,([0-9]*))?\}").match(self.src, start)
        if match is None:
            return None
        low = int(match.group(1))
        high = low if match.group(2) is None else (int(match.group(3)) if match.group(3) else None)
        return low, high, match.end()

    def quantifier(self) -> str | None:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            text = char
        elif char == "{" and (found := self.braced(self.pos)) is not None:
            low, high, self.pos = found
            if high is not None and high < low:
                raise self.error("numbers out of order in {} quantifier")
            if max(low, high or 0) > MAX_COUNT:
                self.lossy.append(f"a repeat count over {MAX_COUNT}")
                low, high = min(low, MAX_COUNT), None if high is None else min(high, MAX_COUNT)
            text = f"{{{low}}}" if high == low else f"{{{low},{'' if high is None else high}}}"
        else:
            return None
        if self.peek() == "?":
            self.pos += 1
            text += "?"
        return text

    def group(self) -> tuple[str, str]:
        self.pos += 1
        kind, opener = "group", "(?:"
        if self.peek() == "?":
            two = self.src[self.pos : self.pos + 3]
            if two.startswith(("?=", "?!")):
                kind, opener = "lookahead", "(" + two[:2]
                self.pos += 2
            elif two in ("?<=", "?<!"):
                kind, opener = "lookbehind", "(" + two
                self.pos += 3
            elif two.startswith("?:"):
                self.pos += 2
            elif two.startswith("?<"):
                self.pos += 2
                if self.group_name() is None:
                    end = self.src.find(">", self.pos)
                    if end < 0:
                        raise self.error("Invalid capture group name")
                    self.lossy.append("a group name other than ASCII letters, digits, _ and $")
                    self.pos = end + 1
            else:
                raise self.error("Invalid group")
        body = self.disjunction()
        if self.peek() != ")":
            raise self.error("Unterminated group")
        self.pos += 1
        # Captures only matter to backreferences, which are not carried: every group is plain.
        return f"{opener}{body})", kind

    def group_name(self) -> str | None:
        match = NAME.match(self.src, self.pos)
        if match is None or self.src[match.end() : match.end() + 1] != ">":
            return None
        self.pos = match.end() + 1
        return match.group(0)

    def atom_escape(self) -> str:
        self.pos += 1
        char = self.peek()
        if char == "":
            raise self.error("\\ at end of pattern")
        if char in "123456789":
            digits = re.compile(r"[0-9]+").match(self.src, self.pos).group(0)
            if int(digits) <= self.groups:
                self.lossy.append(f"a backreference (\\{digits})")
                self.pos += len(digits)
                return "(?!)"
            if char in "89":
                self.pos += 1
                return _unit(ord(char))
            return _unit(self.octal())
        if char == "k" and self.names:
            if self.peek(1) == "<":
                end = self.src.find(">", self.pos)
                if end > 0 and self.src[self.pos + 2 : end] in self.names:
                    self.lossy.append(f"a backreference ({self.src[self.pos - 1 : end + 1]})")
                    self.pos = end + 1
                    return "(?!)"
            raise self.error("Invalid named capture referenced")
        if char in CLASS_ESCAPES:
            self.pos += 1
            return python_class(CLASS_ESCAPES[char])
        return _unit(self.character_escape(in_class=False))

    def character_escape(self, *, in_class: bool) -> int:
        """The code unit of the escape after a backslash (at self.pos), consuming it."""
        char = self.peek()
        if char in CONTROL_ESCAPES:
            self.pos += 1
            return CONTROL_ESCAPES[char]
        if char == "c":
            letter = self.peek(1)
            if letter.isascii() and (letter.isalpha() or (in_class and (letter.isdigit() or letter == "_"))):
                self.pos += 2
                return ord(letter) % 32
            return ord("\\")  # a lone \c is a backslash, and the c is read next as itself
        if char in "01234567":
            return self.octal()
        if char in ("x", "u"):
            size = 2 if char == "x" else 4
            digits = self.src[self.pos + 1 : self.pos + 1 + size]
            if len(digits) == size and all(d in "0123456789abcdefABCDEF" for d in digits):
                self.pos += 1 + size
                return int(digits, 16)
        self.pos += 1
        return ord(char)  # an identity escape: the character itself (Annex B, no u flag)

    def octal(self) -> int:
        """A legacy octal escape: up to three octal digits, at most \\377."""
        value = int(self.peek())
        self.pos += 1
        if self.peek() and self.peek() in "01234567":
            value = value * 8 + int(self.peek())
            self.pos += 1
            if value < 32 and self.peek() and self.peek() in "01234567":
                value = value * 8 + int(self.peek())
                self.pos += 1
        return value

    def char_class(self) -> str:
        self.pos += 1
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        ranges: Ranges = []
        while self.peek() != "]":
            if self.peek() == "":
                raise self.error("Unterminated character class")
            first = self.class_atom()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                second = self.class_atom()
                if isinstance(first, list) or isinstance(second, list):
                    # Annex B: a range with \d, \w or \s at an end is its parts and a hyphen.
                    for part in (first, 0x2D, second):
                        ranges += part if isinstance(part, list) else [(part, part)]
                    continue
                if first > second:
                    raise self.error("Range out of order in character class")
                ranges.append((first, second))
            else:
                ranges += first if isinstance(first, list) else [(first, first)]
        self.pos += 1
        return python_class(ranges, negate)

    def class_atom(self) -> int | Ranges:
        char = self.peek()
        self.pos += 1
        if char != "\\":
            return ord(char)
        char = self.peek()
        if char == "":
            raise self.error("\\ at end of pattern")
        if char in CLASS_ESCAPES:
            self.pos += 1
            return CLASS_ESCAPES[char]
        if char == "b":
            self.pos += 1
            return 0x08
        if char in "89":
            self.pos += 1
            return ord(char)
        if char == "k" and self.names:
            raise self.error("Invalid escape")
        return self.character_escape(in_class=True)


def _count_groups(src: str) -> tuple[int, list[str]]:
    """The pattern's capturing groups (a backreference may point forward) and group names."""
    count, names, i, in_class = 0, [], 0, False
    while i < len(src):
        char = src[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            if not src.startswith("?", i + 1):
                count += 1
            elif src.startswith("?<", i + 1) and src[i + 3 : i + 4] not in ("=", "!"):
                count += 1
                match = NAME.match(src, i + 3)
                if match is not None:
                    names.append(match.group(0))
        i += 1
    return count, names


def translate(pattern: str) -> str:
    """The Python pattern (for re.ASCII, over code units) that decides as ``new RegExp(pattern)``
    does. Raises JsSyntaxError where JavaScript refuses it, NotCarried where it cannot be exact."""
    parser = _Parser(pattern)
    body = parser.disjunction()
    if parser.peek() == ")":
        raise parser.error("Unmatched ')'")
    if len(set(parser.names)) != len(parser.names):
        raise JsSyntaxError("Duplicate capture group name")
    if parser.lossy:
        raise NotCarried(parser.lossy[0])
    try:
        re.compile(body, re.ASCII)
    except re.error as exc:
        # Python's lookbehind takes only patterns of one width; JavaScript's takes any.
        if "look-behind" in str(exc):
            raise NotCarried(f"a lookbehind of varying width ({exc})") from None
        raise NotCarried(f"a construct Python's re cannot match ({exc})") from None
    except (RecursionError, OverflowError) as exc:
        raise NotCarried(f"a pattern too deep or too large for Python's re ({exc})") from None
    return body


@functools.lru_cache(maxsize=512)
def compile_js(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a compiled Python pattern; match it on utf16(text) with search()."""
    return re.compile(translate(pattern), re.ASCII)


def js_test(pattern: str, text: str) -> bool:
    """What JavaScript's ``new RegExp(pattern).test(text)`` returns."""
    return compile_js(pattern).search(utf16(text)) is not None
