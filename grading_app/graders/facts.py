"""Figures, dates and amounts written in text, in a form two texts can be compared by: what the
citation_support grader checks a citing sentence against the documents it cites.

Only what is written in digits counts (number words such as "two" are everyday prose far more
often than figures): numbers with thousands separators, decimals, a sign, a currency or a
percent sign and a scale word ("1.2 million" is 1200000), and dates (ISO, "March 3, 2024",
"3 March 2024", "March 2024"), compared by their parts so "2024-03-03" and "3 March 2024" agree.
"""

import math
import re
from dataclasses import dataclass

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<{0}>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<{0}>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<{0}>\d{{4}})"
_DATES = [
    re.compile(r"(?<!\d)" + _YEAR.format("y") + r"-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)(?!\d)"),
    re.compile(
        r"\b" + _MONTH.format("mn") + r"\s+" + _DAY.format("d") + r"(?:,?\s+" + _YEAR.format("y") + r")?\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b"
        + _DAY.format("d")
        + r"\s+(?:of\s+)?"
        + _MONTH.format("mn")
        + r"(?:,?\s+"
        + _YEAR.format("y")
        + r")?\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b" + _MONTH.format("mn") + r",?\s+" + _YEAR.format("y") + r"\b", re.IGNORECASE),
]
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-\u2212])?[$€£¥]?(?P<n>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    # Scale words; single letters other than k (m, b) are units as often as scales.
    r"(?:\s*(?P<scale>thousand|million|billion|k|mn|bn)\b)?",
    re.IGNORECASE,
)
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9}


@dataclass(frozen=True)
class Date:
    year: int | None
    month: int
    day: int | None

    def agrees(self, other: "Date") -> bool:
        """Same month, and the same day and year wherever both texts give them."""
        return (
            self.month == other.month
            and (self.day is None or other.day is None or self.day == other.day)
            and (self.year is None or other.year is None or self.year == other.year)
        )

    def __str__(self) -> str:
        parts = [
            str(self.year) if self.year else "",
            f"{self.month:02d}",
            f"{self.day:02d}" if self.day else "",
        ]
        return "-".join(p for p in parts if p)


@dataclass(frozen=True)
class Facts:
    numbers: list[tuple[float, str]]  # value, as written
    dates: list[tuple[Date, str]]


def _date(match: re.Match[str]) -> Date | None:
    groups = match.groupdict()
    month = MONTHS[groups["mn"].lower()] if groups.get("mn") else int(groups["m"])
    day = int(groups["d"]) if groups.get("d") else None
    year = int(groups["y"]) if groups.get("y") else None
    if not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
        return None
    return Date(year, month, day)


def extract(text: str) -> Facts:
    """The figures and dates of ``text``; numbers inside a date are not figures of their own."""
    dates: list[tuple[Date, str]] = []
    masked = text
    for pattern in _DATES:
        for match in pattern.finditer(masked):
            date = _date(match)
            if date is not None:
                dates.append((date, match.group(0)))
                # Blank it out so "March 3, 2024" is not read again as "March 2024", nor as 3 and 2024.
                masked = masked[: match.start()] + " " * len(match.group(0)) + masked[match.end() :]
    numbers = []
    for match in _NUMBER.finditer(masked):
        value = float(match["n"].replace(",", "")) * _SCALES.get((match["scale"] or "").lower(), 1.0)
        numbers.append((-value if match["sign"] else value, match.group(0).strip()))
    return Facts(numbers, dates)


def all_numbers(text: str) -> list[float]:
    """Every number of ``text``, those inside dates included (a cited year or day is in it)."""
    facts = extract(text)
    return [value for value, _ in facts.numbers] + [
        float(n) for date, _ in facts.dates for n in (date.year, date.day) if n is not None
    ]


def unsupported(claim: str, sources: list[str]) -> list[str]:
    """The figures and dates of ``claim`` that none of ``sources`` states, as written in it."""
    facts = extract(claim)
    source_numbers = [n for source in sources for n in all_numbers(source)]
    source_dates = [d for source in sources for d, _ in extract(source).dates]
    missing = [
        written
        for value, written in facts.numbers
        if not any(math.isclose(value, n, rel_tol=1e-9, abs_tol=1e-9) for n in source_numbers)
    ]
    missing += [written for date, written in facts.dates if not any(date.agrees(d) for d in source_dates)]
    return missing
