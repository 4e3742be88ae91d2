"""Refusal and escalation detectors: precision and recall on labelled answers.

Sixteen files of answers written for this benchmark (refusals, partial refusals, safe completions,
answers that merely contain "cannot", rules stated as rules, plain answers, abstentions,
hand-offs), each labelled `refused` and `escalated`, with a `split`:
benchmarks/data/refusal_corpus.jsonl (`tune`, `holdout`), refusal_holdout2.jsonl (`holdout2`)
refusal_train3.jsonl (`train3`, and `holdout3`: the answers whose id's SHA-256 is divisible
by 4), refusal_blind1.jsonl (`blind1`, spent), refusal_train4.jsonl (`train4`, `holdout4` by the
same rule), refusal_blind2.jsonl to refusal_blind6.jsonl (`blind2` to `blind6`, each measured
once, then spent), refusal_train8a.jsonl and refusal_train8b.jsonl (`train8a`, `train8b`: two
authors asked to word nearly every refusal without "can't"), refusal_blind7.jsonl (`blind7`, a
third such author, measured once, then spent), refusal_train9a.jsonl and refusal_train9b.jsonl
(`train9a`, `train9b`: two more such authors, more partial refusals and declines that sound
helpful), refusal_blind8.jsonl (`blind8`, a sixth author from the same brief, measured once,
then spent). The refusal model
(grading_app/refusal_model.json) says which splits it was trained on; targets are printed for
the others. benchmarks/README.md says what was tuned on what.

    .venv/bin/python benchmarks/refusal_detector.py [--show-misses] [--corpus PATH ...]

`--corpus PATH` measures any file of the same shape (`text`, `refused`, `escalated`; `id` and
`category` optional) as a split of its own, named by the file, without printing its answers
unless --show-misses is given. Also timed against the refusal grader's old phrase match.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _setup import BENCH_DIR, REPO, print_ratio

sys.path.insert(0, str(REPO))

from grading_app import refusal_model
from grading_app.detectors import detect_escalation, detect_refusal

DATA = BENCH_DIR / "data"
CORPORA = [
    DATA / "refusal_corpus.jsonl",
    DATA / "refusal_holdout2.jsonl",
    DATA / "refusal_train3.jsonl",
    DATA / "refusal_blind1.jsonl",
    DATA / "refusal_train4.jsonl",
    DATA / "refusal_blind2.jsonl",
    DATA / "refusal_blind3.jsonl",
    DATA / "refusal_blind4.jsonl",
    DATA / "refusal_blind5.jsonl",
    DATA / "refusal_blind6.jsonl",
    DATA / "refusal_train8a.jsonl",
    DATA / "refusal_train8b.jsonl",
    DATA / "refusal_blind7.jsonl",
    DATA / "refusal_train9a.jsonl",
    DATA / "refusal_train9b.jsonl",
    DATA / "refusal_blind8.jsonl",
]
TARGET = ">= 0.95"
# What refusal_model.json was trained on, as the training script wrote into it: every split
# but the two hold-outs (a model file from elsewhere says its own).
TRAINED_ON = tuple(json.loads(refusal_model.MODEL_PATH.read_text(encoding="utf-8"))["trained_on"])
HELD_OUTS = ("holdout3", "holdout4")


def read_corpus(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """The answers of ``path``; with ``split``, each row is given that split (a corpus passed
    with --corpus is one split whatever its rows say). Exits naming the line and field of the
    first row that is not a labelled answer."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        sys.exit(f"{path}: {error}")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            sys.exit(f"{path}:{number}: not JSON: {error}")
        if not isinstance(row, dict):
            sys.exit(f"{path}:{number}: not a JSON object")
        for field, kind in (("text", str), ("refused", bool), ("escalated", bool)):
            if not isinstance(row.get(field), kind):
                sys.exit(
                    f"{path}:{number}: '{field}' must be {'a string' if kind is str else 'true or false'}"
                )
        row.setdefault("id", f"{path.stem}:{number}")
        row.setdefault("category", "?")
        if split is not None:
            row["split"] = split
        rows.append(row)
    return rows


def scores(
    rows: list[dict[str, Any]], signal: str, detect: Callable[[dict[str, Any]], bool]
) -> tuple[float, float, list[str]]:
    """Precision, recall, and the ids it got wrong."""
    tp = fp = fn = 0
    misses = []
    for row in rows:
        found = detect(row)
        tp += found and row[signal]
        fp += found and not row[signal]
        fn += not found and row[signal]
        if found != row[signal]:
            misses.append(row["id"])
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return precision, recall, misses


def phrase_match(text: str) -> bool:
    # The refusal grader's phrase list before the detector (grading_app.graders.safety).
    from grading_app.graders.safety import DEFAULT_REFUSAL_PHRASES, find_phrase

    return find_phrase(text, DEFAULT_REFUSAL_PHRASES) is not None


def print_categories(name: str, rows: list[dict[str, Any]]) -> None:
    """Per category of a split: answers, and how many each detector gets wrong."""
    print(f"{name} by category: answers, refusal detector wrong, escalation detector wrong")
    for category in sorted({r["category"] for r in rows}):
        part = [r for r in rows if r["category"] == category]
        refusal_wrong = sum(detect_refusal(r["text"]).detected != r["refused"] for r in part)
        escalation_wrong = sum(detect_escalation(r["text"], []).detected != r["escalated"] for r in part)
        print(f"    {category:<20} {len(part):>4} {refusal_wrong:>4} {escalation_wrong:>4}")


def timed(function: Callable[[str], Any], texts: list[str], repeat: int = 20) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            function(text)
    return (time.perf_counter() - started) / (repeat * len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--show-misses", action="store_true", help="print each answer the detectors get wrong"
    )
    parser.add_argument(
        "--corpus",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="also measure this JSONL file of labelled answers, as a split of its own",
    )
    args = parser.parse_args()
    rows = [row for corpus in CORPORA for row in read_corpus(corpus)]
    extra = [path.stem for path in args.corpus]
    if len(set(extra)) != len(extra) or set(extra) & {r["split"] for r in rows}:
        sys.exit("--corpus: each file needs a name of its own, unlike the built-in splits")
    for path in args.corpus:
        rows += read_corpus(path, split=path.stem)
    by_id = {row["id"]: row for row in rows}
    names = [*dict.fromkeys(r["split"] for r in rows)]  # the files' splits, in order, then --corpus
    splits = {name: [r for r in rows if r["split"] == name] for name in names}
    splits["trained-on"] = [r for r in rows if r["split"] in TRAINED_ON]
    # The second hold-out has a few answers in other languages.
    splits["holdout2-en"] = [r for r in splits["holdout2"] if r.get("lang", "en") == "en"]
    counts = ", ".join(f"{name} {len(part)}" for name, part in splits.items())
    refusals = sum(r["refused"] for r in rows)
    print(f"corpus: {counts} answers; {refusals} refusals, {sum(r['escalated'] for r in rows)} hand-offs")
    measured = [name for name in names if name not in TRAINED_ON]  # what says how it generalises
    print(f"the refusal model was trained on {', '.join(TRAINED_ON)}; not on {', '.join(measured)}")
    detectors = {
        "refusal": ("refused", lambda r: detect_refusal(r["text"]).detected),
        "escalation": ("escalated", lambda r: detect_escalation(r["text"], []).detected),
        "phrase match (old refusal grader)": ("refused", lambda r: phrase_match(r["text"])),
    }
    for label, (signal, detect) in detectors.items():
        for split, part in splits.items():
            precision, recall, misses = scores(part, signal, detect)
            print(
                f"{label:<34} {split:<11} precision {precision:.3f}  recall {recall:.3f}  wrong {len(misses)}"
            )
            if label == "refusal" and split in measured:
                print_ratio(f"refusal precision, {split}", precision, TARGET)
                print_ratio(f"refusal recall, {split}", recall, TARGET)
            if label == "escalation" and split in measured:
                print_ratio(f"escalation precision, {split}", precision)
                print_ratio(f"escalation recall, {split}", recall)
            if args.show_misses and split not in ("trained-on", "holdout2-en"):
                for ident in misses:
                    print(f"    {ident}: {by_id[ident]['text'][:150]!r}")
    for split in measured:
        print_categories(split, splits[split])
    texts = [r["text"] for r in rows if r["split"] in (*TRAINED_ON, *HELD_OUTS)]
    detector_s, phrase_s = timed(lambda t: detect_refusal(t), texts), timed(phrase_match, texts)
    print(f"time per answer: detector {detector_s * 1e6:.1f} us, phrase match {phrase_s * 1e6:.1f} us")
    print_ratio("refusal detector time / phrase match time", detector_s / phrase_s)


if __name__ == "__main__":
    main()
