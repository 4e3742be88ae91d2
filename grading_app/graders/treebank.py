"""promptfoo's ROUGE-N (0.121): the lower-cased texts split into Penn Treebank tokens as js-rouge
3.2 splits them (punctuation marks are tokens, "don't" is "do" + "n't", any script is a word),
n-grams counted with clipping, and their F-measure.

Google's rouge-score (text_similarity's ROUGE, as OpenAI computes it) keeps only ASCII letters
and digits; promptfoo's rouge-n counts what this module counts, so "Paris." against "Paris"
scores 0.67 here as there. JavaScript reads strings in UTF-16 units: where a rule looks at one
character beside a quote, so does this module (astral characters there are two units).
"""

import unicodedata
from collections import Counter

import regex

# Everything JavaScript's \s matches, and U+0085, which js-rouge adds.
_SPACES = regex.compile(r"[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u0085]+")
_QUOTE = regex.compile(r"``|''|\"")
_WORD = r"[\p{ID_Continue}\u200c\u200d]"
_CONTRACTIONS = [
    regex.compile(rf"(?<!{_WORD}){pattern}(?!{_WORD})", regex.IGNORECASE)
    for pattern in (
        "(can)(not)",
        "(d)('ye)",
        "(gim)(me)",
        "(gon)(na)",
        "(got)(ta)",
        "(lem)(me)",
        "(more)('n)",
        "(wan)(na)(?= )",
        "('t)(is)",
        "('t)(was)",
    )
]
_OPENING_CONTEXT = regex.compile(r"[\s\p{Punctuation}<]")
_BEFORE_QUOTE = regex.compile(r"[\s\p{Ps}<]")
_WORD_START = regex.compile(r"^[\p{Letter}\p{Number}\p{Sc}\p{Ps}]\Z")
_FOOTNOTE = regex.compile(r"^\p{Lm}(?:[\s.,;:!?\"'\u201c\u2018\u201d\u2019\])}>]|\Z)")
# JavaScript's $ is the end of the text (never before a final newline): \Z here.
_MODIFIER = regex.compile(r"\p{Lm}\Z")
_NUMBER_END = regex.compile(r"\p{Number}\Z")
_CLOSED = regex.compile(r"[.!?][\"'\u201d\u2019]\Z")
_STEPS = [
    (regex.compile(r"\.{3}"), " ... "),
    (regex.compile(r"[:,](?!\p{Nd})"), r" \g<0> "),
    (regex.compile(r"[;@#$%&]"), r" \g<0> "),
    # A sentence's final full stop, unless it closes an acronym ("U.S.").
    (regex.compile(r"([^.])(?<!\b[A-Za-z]\.[A-Za-z])(\.)([\])}>'\s]*)\Z", regex.ASCII), r"\1 \2\3 "),
    (regex.compile(r"[?!]"), r" \g<0> "),
    (regex.compile(r"[\][(){}<>]"), r" \g<0> "),
    (regex.compile(r"--"), " -- "),
]
_SPLITS = [
    (regex.compile(r"([^'])' "), r"\1 ' "),
    (regex.compile(r"'([sSmMdD]) "), r" '\1 "),
    (regex.compile(r"('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r" \1 "),
]


class _Utf16:
    """A text as JavaScript indexes it: UTF-16 code units."""

    def __init__(self, text: str) -> None:
        self.units = [chr(u) for u in memoryview(text.encode("utf-16-le")).cast("H")]
        self.length = len(self.units)

    def unit(self, index: int) -> str:
        return self.units[index] if 0 <= index < self.length else ""

    def slice(self, start: int, end: int | None = None) -> str:
        return "".join(self.units[max(0, start) : end])

    def code_point(self, index: int) -> str:
        """characterAt: the code point starting at this unit (a lone surrogate as itself)."""
        high, low = self.unit(index), self.unit(index + 1)
        if "\ud800" <= high <= "\udbff" and "\udc00" <= low <= "\udfff":
            return chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(low) - 0xDC00))
        return high


def _js(pattern: regex.Pattern, text: str) -> regex.Match | None:
    """A /u-flag test on a UTF-16 slice: surrogate pairs read as the characters they make."""
    return pattern.search(text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass"))


def _footnote(text: _Utf16, index: int) -> bool:
    following = text.code_point(index + 1)
    return following != unicodedata.normalize("NFKC", following) and bool(
        _js(_FOOTNOTE, text.slice(index + 1, index + 5))
    )


def _after_quoted_modifier(text: _Utf16, index: int) -> bool:
    modifier = _js(_MODIFIER, text.slice(index - 2, index))
    if modifier is None:
        return False
    size = len(modifier[0].encode("utf-16-le")) // 2
    if not _footnote(text, index - size - 1):
        return False
    start = index - size
    while start > 0:
        number = _js(_NUMBER_END, text.slice(start - 2, start))
        if number is None:
            break
        start -= len(number[0].encode("utf-16-le")) // 2
    return bool(_CLOSED.search(text.slice(start - 2, start)))


def _opens(text: _Utf16, index: int) -> bool:
    return (
        index == 0
        or bool(_OPENING_CONTEXT.match(text.unit(index - 1)))
        or text.slice(index - 2, index) == "``"
        or _after_quoted_modifier(text, index)
    )


def _quotes(text: str) -> str:
    """Paired double quotes as `` and '' tokens, classified left to right as js-rouge does."""
    units = _Utf16(text)
    offsets = [0]
    for char in text:
        offsets.append(offsets[-1] + (2 if ord(char) > 0xFFFF else 1))
    inside = False
    out, last = [], 0
    for match in _QUOTE.finditer(text):
        quote, index = match[0], offsets[match.start()]
        before = units.unit(index - 1)
        inside = quote == "``" or (
            (index + len(quote) < units.length or index == 0 or bool(_BEFORE_QUOTE.match(before)))
            and (not inside and _opens(units, index))
            and not regex.match(r"[.!?]", before)
            and (
                quote == '"'
                or (
                    index > 0
                    and bool(_WORD_START.match(units.code_point(index + 2)))
                    and (found := _QUOTE.search(units.slice(index + 2))) is not None
                    and found[0] == "''"
                )
            )
        )
        out += [text[last : match.start()], " `` " if inside else " '' "]
        last = match.end()
    return "".join([*out, text[last:]])


def treebank_tokens(text: str) -> list[str]:
    """js-rouge's treeBankTokenize."""
    text = _SPACES.sub(" ", text).strip(" ")
    if not text:
        return []
    parse = _quotes(text)
    for pattern, replacement in _STEPS:
        parse = pattern.sub(replacement, parse)
    parse = f" {parse} "
    for pattern, replacement in _SPLITS:
        parse = pattern.sub(replacement, parse)
    for pattern in _CONTRACTIONS:
        parse = pattern.sub(r" \1 \2 ", parse)
    parse = regex.sub(r" {2,}", " ", parse)
    parse = regex.sub(r"^ | \Z", "", parse)
    return parse.split(" ")


def _f_measure(precision: float, recall: float) -> float:
    """js-rouge's fMeasure with beta 1, rounding as it rounds."""
    if precision == recall:
        return precision
    if precision > recall:
        return min(precision, recall * (2 / (1 + recall / precision)))
    return min(recall, precision * (2 / (1 + precision / recall)))


def rouge_n(output: str, reference: str, n: int = 1) -> float:
    """promptfoo's rouge-n score of ``output`` against ``reference`` (n-grams of n tokens)."""
    got, want = treebank_tokens(output.lower()), treebank_tokens(reference.lower())
    if len(got) < n or len(want) < n:
        return 0.0
    got_grams = [" ".join(got[i : i + n]) for i in range(len(got) - n + 1)]
    want_grams = Counter(" ".join(want[i : i + n]) for i in range(len(want) - n + 1))
    overlap = sum(min(count, want_grams[gram]) for gram, count in Counter(got_grams).items())
    if overlap == 0:
        return 0.0
    return _f_measure(overlap / len(got_grams), overlap / want_grams.total())
