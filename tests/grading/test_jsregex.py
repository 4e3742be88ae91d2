"""What a JavaScript pattern becomes in Python (evalproject.jsregex), what is refused as
JavaScript refuses it, and what is not carried; Node decides the same patterns in
test_jsregex_differential."""

import pytest

from evalproject.jsregex import JsSyntaxError, NotCarried, js_test, translate, utf16

NOT_LINE_TERMINATOR = r"[\x00-\x09\x0b-\x0c\x0e-\u2027\u202a-\uffff]"


@pytest.mark.parametrize(
    "pattern, python",
    [
        (r"^\d+$", r"\A(?:[0-9])+\Z"),  # $ is the end, not before a final newline
        (r"a.b", rf"a{NOT_LINE_TERMINATOR}b"),
        (r"[^]", r"[\x00-\uffff]"),
        (r"[]", "(?!)"),
        (r"\u{2}", "(?:u){2}"),  # without the u flag: a `u` twice
        (r"a{,3}", r"a\x7b\x2c3\x7d"),  # not a quantifier in JavaScript: text
        (r"\8\101\400", r"8A\x200"),  # legacy octal, at most \377
        (r"[\d-z]", r"[\x2d0-9z]"),  # Annex B: a class escape at a range's end is a hyphen
        (r"\cA\c1[\c1]", r"\x01\x5cc1[\x11]"),
        (r"\a\z\/", r"az\x2f"),  # identity escapes, where Python's \a is a bell
        ("\U0001f600+", r"\ud83d(?:\ude00)+"),  # two code units; + repeats the second
        (r"(?=a)*b", "(?:)b"),  # a repeated lookahead: allowing none is no assertion
        (r"(?<n>a)(b)", "(?:a)(?:b)"),  # captures matter only to backreferences
        (r"(?<=ab)c", "(?<=ab)c"),
    ],
)
def test_a_javascript_pattern_becomes_a_python_pattern_of_the_same_code_units(pattern, python):
    assert translate(pattern) == python


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("*a", "Nothing to repeat"),
        ("a{2,1}", "numbers out of order"),
        ("(a", "Unterminated group"),
        ("a)", "Unmatched ')'"),
        ("[a", "Unterminated character class"),
        ("[z-a]", "Range out of order"),
        ("(?i)a", "Invalid group"),  # no inline flags in Node 20's RegExp
        ("(?<=a)*", "Nothing to repeat"),
        ("a\\", "\\ at end of pattern"),
        (r"(?<n>a)\k<m>", "Invalid named capture"),
        (r"(?<n>a)(?<n>b)", "Duplicate capture group name"),
    ],
)
def test_a_pattern_javascript_refuses_is_refused_saying_why(pattern, message):
    with pytest.raises(JsSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        translate(pattern)


@pytest.mark.parametrize(
    "pattern, why",
    [
        (r"(a)\1", "backreference"),
        (r"\1(a)", "backreference"),  # JavaScript: a forward reference matches empty
        (r"(?<n>a)\k<n>", "backreference"),
        (r"(?<é>a)", "group name"),
        (r"(?<=a+)b", "look-behind requires fixed-width"),
        (r"a{70000}", "repeat count"),
    ],
)
def test_a_valid_pattern_that_cannot_be_carried_exactly_is_not_carried(pattern, why):
    with pytest.raises(NotCarried, match=why):
        translate(pattern)


def test_a_refusal_wins_over_what_cannot_be_carried():
    with pytest.raises(JsSyntaxError):
        translate(r"(a)\1(")


def test_text_is_matched_as_javascript_sees_it_in_code_units():
    assert utf16("a\U0001f600") == "a\ud83d\ude00"
    assert js_test(r"^..$", "\U0001f600") and not js_test(r"^.$", "\U0001f600")
    assert not js_test(r"^\d+$", "42\n") and js_test(r"^\d+$", "42")
