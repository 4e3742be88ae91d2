"""evalproject.jsregex decides as Node's RegExp does: thousands of generated patterns (biased to
the constructs where Python's re reads JavaScript otherwise) on texts holding the characters
where the two differ, each decided by Node itself and by the translation."""

import json
import os
import random
import shutil
import subprocess

import pytest

from evalproject.jsregex import JsSyntaxError, NotCarried, js_test, translate

# Each test reads the patterns from standard input: a JSON list; prints, for each, "E" where
# `new RegExp(pattern)` throws, else one 0/1 per text for `.test(text)`.
NODE_SCRIPT = """
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const { patterns, texts } = JSON.parse(input);
  const out = patterns.map((p) => {
    let re;
    try { re = new RegExp(p); } catch (e) { return 'E'; }
    return texts.map((t) => (re.test(t) ? '1' : '0')).join('');
  });
  process.stdout.write(JSON.stringify(out));
});
"""


def listed(text: str, separator: str | None = None) -> list[str]:
    return text.split(separator)


# Pieces of patterns: literals, and every construct the translator reads otherwise than Python.
PIECES = [
    *listed(r"""
    a A b 0 _ - k u x { } ] , / 8
    \d \D \w \W \s \S \b \B . ^ $
    \0 \00 \1 \2 \8 \9 \10 \101 \377 \400 \08
    \cA \cj \c1 \c \c_ \x41 \x4 \u0041 \u{41} \u{2} \uD83D
    \a \z \p{L} \k \k<n> \/ \- \t \n \r \v \f \e \Z \A \G \h
    [^] [] [a-z] [^a] [\d-z] [a-\w] [\b] [\B] [\cA] [\c1] [\c_] [\c*] [\s] [^\s] [\S\d]
    [^\W] [a-] [-a] [\1] [\8] [z-a] [\-] [😀] [^😀] [.] [\x41-\x43] [\u2028] [\0] [\k]
    😀 é ٣
    * + ? {2} {,2} {1,} {1,2} {2,1} *? +? {0} {x}
    ( ) | (?: (?= (?! (?<= (?<! (?<n> (?<m> (?i) (?P<n> (?> a*+ \
    (a) (?<n>a) (a|b) (?:a|) (?:|b) (?<=a) (?<!a) (?<=\w) (?<=😀) (?<=.) (?<=\b) (?=\d) (?!$)
    (?:a*)* (?:\b|a)+ (?:$|a)* (?:)
    """),
    *listed(" |\u2028|\r|\n|\ufeff|\xa0|\x1c", "|"),
]
# Texts holding the characters where the two dialects differ; the last, a mathematical digit
# zero, is a digit to Python's \d and not to JavaScript's.
TEXTS = [
    *listed(r"""
    a b ab aab A 0 42 a\rb ٣ é éa café 😀 a😀b 😀😀 \c \c1 \ x4 u uu u{41} u{2} p{L} k 8 9 AB
    {,2} a{,2} a{x} { } ] - / _ é_ straße a-b aA0_ Ⅷ ǅ kk ab😀 ÿ aaaaa ba bab a,b
    """),
    *listed("|42\n|a\n|\n|\r|\u2028|a\u2028b|\ud83d|\ude00| |a b|\xa0|\ufeff|\x1c|\x08", "|"),
    *listed("\x01|\x11|\x1f|\x00|\x008|b\n|ab\r\n|\U0001d7d8", "|"),
]
GENERATED = 4000


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not on PATH: the differential test against JavaScript must run in CI")
        print("node is not on PATH: the differential test against JavaScript is skipped")
        pytest.skip("node is not installed")
    return node


def node_decides(patterns: list[str], texts: list[str]) -> list[str]:
    done = subprocess.run(
        [_node(), "-e", NODE_SCRIPT],
        input=json.dumps({"patterns": patterns, "texts": texts}),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        encoding="utf-8",
        errors="surrogatepass",
    )
    return json.loads(done.stdout)


def generated_patterns(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    found = set()
    while len(found) < count:
        found.add("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))))
    return sorted(found)


def python_decides(pattern: str, texts: list[str]) -> str:
    try:
        translate(pattern)
    except JsSyntaxError:
        return "E"
    except NotCarried:
        return "N"
    return "".join("1" if js_test(pattern, text) else "0" for text in texts)


def differences(patterns: list[str], texts: list[str]) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    node = node_decides(patterns, texts)
    wrong, counts = [], {"carried": 0, "refused as JavaScript refuses": 0, "not carried": 0, "checks": 0}
    for pattern, by_node in zip(patterns, node, strict=True):
        mine = python_decides(pattern, texts)
        if mine == "N":
            counts["not carried"] += 1
            continue
        if mine != by_node:
            wrong.append((pattern, by_node, mine))
        elif mine == "E":
            counts["refused as JavaScript refuses"] += 1
        else:
            counts["carried"] += 1
            counts["checks"] += len(texts)
    return wrong, counts


def test_translated_patterns_decide_as_node_on_generated_patterns_and_texts():
    patterns = generated_patterns(GENERATED, seed=15)

    wrong, counts = differences(patterns, TEXTS)

    print(f"jsregex differential: {counts}")
    assert wrong == []
    # The generator must exercise the translation, not only its refusals.
    assert counts["carried"] > GENERATED // 2 and counts["refused as JavaScript refuses"] > 100


# Where Python's re, given the pattern as written, decides otherwise than JavaScript.
DIVERGENT = [
    (r"^\d+$", "42\n"),
    (r"^\d+$", "٣"),
    (r"^\w+$", "café"),
    (r"\bas\b", "àas"),
    (r"^a.b$", "a\rb"),
    (r"^a.b$", "a\u2028b"),
    (r"^.$", "😀"),
    (r"^..$", "😀"),
    (r"^[^x]$", "😀"),
    (r"^\s$", "\ufeff"),
    (r"^\s$", "\x1c"),
    (r"^\S$", "\x85"),
    (r"\a", "a"),
    (r"\z", "z"),
    (r"a{,2}", "aa"),
    (r"\u{2}", "uu"),
    (r"\8", "8"),
    (r"\1", "\x01"),
    (r"\400", " 0"),
    (r"[\c1]", "\x11"),
    (r"\c1", "\\c1"),
    (r"\B", ""),
    (r"[^]", "x"),
    (r"(?<n>x)y", "xy"),
]


def test_each_divergence_from_pythons_re_is_decided_as_node_decides():
    import re

    texts = sorted({text for _, text in DIVERGENT})
    by_node = dict(
        zip([p for p, _ in DIVERGENT], node_decides([p for p, _ in DIVERGENT], texts), strict=True)
    )

    for pattern, text in DIVERGENT:
        node = by_node[pattern] if by_node[pattern] == "E" else by_node[pattern][texts.index(text)] == "1"
        try:
            python_re = re.search(pattern, text) is not None
        except re.error:
            python_re = "E"
        assert node != python_re, (pattern, text)  # the case is a real divergence
        assert js_test(pattern, text) == node, (pattern, text)
