"""Train the refusal model and write grading_app/refusal_model.json.

    .venv/bin/pip install -e '.[train]'     # scikit-learn: for training only, never at run time
    .venv/bin/python scripts/train_refusal_detector.py [--leave-out SPLIT ...] [--output PATH]

Reads every labelled answer in benchmarks/data/refusal_*.jsonl and trains on all of them except
the hold-outs: splits `holdout3` and `holdout4` always (a quarter of refusal_train3.jsonl and of
refusal_train4.jsonl, by the SHA-256 of the id), and any split named with --leave-out (e.g.
`--leave-out holdout2 --output /tmp/m.json` to
see how a model that never saw the second file's author does on it). Prints precision and recall
on every split, decided by the written file through the detector's own plain-Python path.

The model (multiple-instance logistic regression): an answer is a bag of sentences, each read
as the words and word pairs it holds plus the hand-written rules' signals
(grading_app.detectors.refusal_sentences), and it is a refusal when its most refusing sentence
scores at or above the threshold. Training starts with every sentence of a refusal as a positive
example and every sentence of any other answer as a negative one, then, for ITERATIONS rounds,
keeps only each refusal's highest-scoring sentence as its positive. The threshold is the lowest
whose precision on 5-fold cross-validation scores of the training answers is at least 0.95 (the
target), so it has the most recall there; the hold-outs choose nothing. The curve around it is
written into the model file. C = 1 and the sentence split were chosen by the same cross-validation.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grading_app import refusal_model  # noqa: E402
from grading_app.detectors import refusal_sentences  # noqa: E402

DATA = REPO / "benchmarks" / "data"
HOLD_OUTS = {"holdout3": "refusal_train3.jsonl", "holdout4": "refusal_train4.jsonl"}
TARGET = 0.95  # the cross-validated precision the threshold must reach
C = 1.0
ITERATIONS = 4
Bag = list[dict[str, int]]


def read_rows() -> list[dict[str, Any]]:
    rows = []
    for path in sorted(DATA.glob("refusal_*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row.get("refused"), bool) or not isinstance(row.get("text"), str):
                    sys.exit(f"{path.name}:{number}: 'refused' must be true or false and 'text' a string")
                rows.append(row)
    return rows


def bag_of(text: str) -> Bag:
    sentences = refusal_sentences(text)
    return [dict.fromkeys(refusal_model.features(words, signals), 1) for _, words, signals in sentences] or [
        {}
    ]


def fit(bags: list[Bag], labels: list[bool]) -> tuple[DictVectorizer, LogisticRegression]:
    """A sentence classifier whose best sentence per refusal decides the refusal."""
    chosen = [list(range(len(bag))) if label else [] for bag, label in zip(bags, labels, strict=True)]
    for _ in range(ITERATIONS):
        examples, targets = [], []
        for bag, label, picked in zip(bags, labels, chosen, strict=True):
            sentences = [bag[i] for i in picked] if label else bag
            examples += sentences
            targets += [int(label)] * len(sentences)
        vectorizer = DictVectorizer()
        classifier = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
        classifier.fit(vectorizer.fit_transform(examples), targets)
        for index, (bag, label) in enumerate(zip(bags, labels, strict=True)):
            if label:
                chosen[index] = [int(np.argmax(classifier.decision_function(vectorizer.transform(bag))))]
    return vectorizer, classifier


def cross_validated_scores(bags: list[Bag], labels: list[bool]) -> np.ndarray:
    """Each training answer's score from a model fitted on the other four fifths."""
    scores = np.zeros(len(bags))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for train, test in folds.split(np.zeros(len(labels)), labels):
        vectorizer, classifier = fit([bags[i] for i in train], [labels[i] for i in train])
        for i in test:
            scores[i] = classifier.decision_function(vectorizer.transform(bags[i])).max()
    return scores


def curve(scores: np.ndarray, labels: list[bool]) -> list[tuple[float, float, float]]:
    """(threshold, precision, recall) for each candidate threshold, lowest first."""
    truth = np.array(labels)
    points = []
    for threshold in np.round(np.arange(-2.0, 3.01, 0.1), 1):
        found = scores >= threshold
        tp = int((found & truth).sum())
        points.append((float(threshold), tp / max(int(found.sum()), 1), tp / int(truth.sum())))
    return points


def choose_threshold(points: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The threshold whose cross-validated precision is at least TARGET with the most recall
    (the lowest such threshold); if none reaches it, the one with the best precision."""
    reaching = [point for point in points if point[1] >= TARGET]
    if reaching:
        return max(reaching, key=lambda point: (point[2], -point[0]))
    return max(points, key=lambda point: (point[1], point[2]))


def export(vectorizer: DictVectorizer, classifier: LogisticRegression, threshold: float, meta: dict) -> dict:
    names = vectorizer.get_feature_names_out()
    weights = {
        str(name): round(float(w), 4)
        for name, w in zip(names, classifier.coef_[0], strict=True)
        if abs(w) >= 1e-4
    }
    return {
        "format": refusal_model.FORMAT,
        **meta,
        "bias": round(float(classifier.intercept_[0]), 4),
        "threshold": threshold,
        "weights": dict(sorted(weights.items())),
    }


def decided(model: refusal_model.Model, text: str) -> bool:
    return any(
        model.score(words, signals) >= model.threshold for _, words, signals in refusal_sentences(text)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--leave-out", action="append", default=[], metavar="SPLIT", help="also hold out SPLIT"
    )
    parser.add_argument("--output", type=Path, default=refusal_model.MODEL_PATH)
    args = parser.parse_args()
    held = {*HOLD_OUTS, *args.leave_out}
    rows = read_rows()
    for row in rows:
        # The hold-outs are fixed by the id, so no one can move an answer out of one by hand.
        in_hold_out = int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 4 == 0
        if row["split"] in HOLD_OUTS and not in_hold_out:
            sys.exit(f"{row['id']}: in {row['split']} but its SHA-256 is not divisible by 4")
    training = [r for r in rows if r["split"] not in held]
    bags, labels = [bag_of(r["text"]) for r in training], [r["refused"] for r in training]
    points = curve(cross_validated_scores(bags, labels), labels)
    threshold, cv_precision, cv_recall = choose_threshold(points)
    vectorizer, classifier = fit(bags, labels)
    trained_on = sorted({r["split"] for r in training})
    meta = {
        "trained_on": {split: sum(r["split"] == split for r in training) for split in trained_on},
        "cross_validation": {"precision": round(cv_precision, 3), "recall": round(cv_recall, 3)},
        "cross_validation_curve": [
            {"threshold": t, "precision": round(p, 3), "recall": round(r, 3)}
            for t, p, r in points
            if abs(t - threshold) <= 0.55
        ],
    }
    args.output.write_text(
        json.dumps(export(vectorizer, classifier, threshold, meta), indent=0) + "\n", encoding="utf-8"
    )
    model = refusal_model.load(args.output)
    weights = len(model.words) + len(model.pairs) + len(model.signals)
    print(f"wrote {args.output}: {weights} weights, threshold {threshold}")
    print(f"trained on {meta['trained_on']}")
    print(f"5-fold cross-validation on them: precision {cv_precision:.3f} recall {cv_recall:.3f}")
    for point in meta["cross_validation_curve"]:
        print(
            f"  threshold {point['threshold']:>4}: "
            f"precision {point['precision']:.3f} recall {point['recall']:.3f}"
        )
    for split in sorted({r["split"] for r in rows}):
        part = [r for r in rows if r["split"] == split]
        found = [(decided(model, r["text"]), r["refused"]) for r in part]
        tp = sum(d and r for d, r in found)
        precision, recall = tp / max(sum(d for d, _ in found), 1), tp / max(sum(r for _, r in found), 1)
        role = "held out" if split in held else "trained on"
        print(
            f"  {split:<9} {role:<10} {len(part):>4} answers  precision {precision:.3f}  recall {recall:.3f}"
        )


if __name__ == "__main__":
    main()
