"""Refusal and escalation detectors: precision and recall on labelled answers.

benchmarks/data/refusal_corpus.jsonl holds 330 answers written for this benchmark (refusals,
partial refusals, safe completions, answers that merely contain "cannot", plain answers,
abstentions, hand-offs), each labelled `refused` and `escalated`, split into `tune` and
`holdout` by a hash of its id before the detector was written. The first detector was tuned on
`tune` and measured on `holdout`; that hold-out's misses were then published and fixed, so both
splits are tuned-on now. benchmarks/data/refusal_holdout2.jsonl (182 answers, split `holdout2`)
was written and committed before the detector was changed again and is not tuned on: its figures
are the honest ones. Also timed against the old phrase match, on the same answers.

    .venv/bin/python benchmarks/refusal_detector.py [--show-misses]
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from _setup import BENCH_DIR, REPO, print_ratio

sys.path.insert(0, str(REPO))

from grading_app.detectors import detect_escalation, detect_refusal

CORPORA = [BENCH_DIR / "data" / "refusal_corpus.jsonl", BENCH_DIR / "data" / "refusal_holdout2.jsonl"]
TARGET = ">= 0.95"


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


def print_categories(rows: list[dict[str, Any]]) -> None:
    """Per category of the untuned hold-out: answers, and how many each detector gets wrong."""
    print("holdout2 by category: answers, refusal detector wrong, escalation detector wrong")
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
    args = parser.parse_args()
    rows = [
        json.loads(line)
        for corpus in CORPORA
        for line in corpus.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    by_id = {row["id"]: row for row in rows}
    splits = {name: [r for r in rows if r["split"] == name] for name in ("tune", "holdout", "holdout2")}
    # The first hold-out is tuned on now; "tuned-on" is the whole first corpus.
    splits["tuned-on"] = splits["tune"] + splits["holdout"]
    # The detector reads English only; the second hold-out has a few answers in other languages.
    splits["holdout2-en"] = [r for r in splits["holdout2"] if r.get("lang", "en") == "en"]
    counts = ", ".join(f"{name} {len(part)}" for name, part in splits.items())
    refusals = sum(r["refused"] for r in rows)
    print(f"corpus: {counts} answers; {refusals} refusals, {sum(r['escalated'] for r in rows)} hand-offs")
    detectors = {
        "refusal": ("refused", lambda r: detect_refusal(r["text"]).detected),
        "escalation": ("escalated", lambda r: detect_escalation(r["text"], []).detected),
        "phrase match (old refusal grader)": ("refused", lambda r: phrase_match(r["text"])),
    }
    for label, (signal, detect) in detectors.items():
        for split, part in splits.items():
            precision, recall, misses = scores(part, signal, detect)
            print(
                f"{label:<34} {split:<8} precision {precision:.3f}  recall {recall:.3f}  wrong {len(misses)}"
            )
            if label == "refusal":
                print_ratio(f"refusal precision, {split}", precision, TARGET)
                print_ratio(f"refusal recall, {split}", recall, TARGET)
            if label == "escalation" and split.startswith("holdout2"):
                print_ratio(f"escalation precision, {split}", precision)
                print_ratio(f"escalation recall, {split}", recall)
            if args.show_misses and split not in ("tuned-on", "holdout2-en"):
                for ident in misses:
                    print(f"    {ident}: {by_id[ident]['text'][:150]!r}")
    print_categories(splits["holdout2"])
    texts = [r["text"] for r in rows]
    detector_s, phrase_s = timed(lambda t: detect_refusal(t), texts), timed(phrase_match, texts)
    print(f"time per answer: detector {detector_s * 1e6:.1f} us, phrase match {phrase_s * 1e6:.1f} us")
    print_ratio("refusal detector time / phrase match time", detector_s / phrase_s)


if __name__ == "__main__":
    main()
