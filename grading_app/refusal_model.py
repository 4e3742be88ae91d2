"""The learned refusal model: the features an answer is read as, and a linear model over them
loaded from committed weights (refusal_model.json, trained by scripts/train_refusal_detector.py).

Inference is plain Python (a dictionary look-up per feature), so it needs no library at run time
and decides the same way everywhere. The training script imports ``features`` from here, so the
model is trained on exactly what it is later given.
"""

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("refusal_model.json")
FORMAT = "evalgate-refusal-model/1"

# Spellings of one negation read as one word, so "cannot", "can not" and "can't" share weights.
_NORMALISE = [
    ("cannot", "can't"),
    ("can not", "can't"),
    ("will not", "won't"),
    ("do not", "don't"),
    ("does not", "doesn't"),
    ("is not", "isn't"),
    ("are not", "aren't"),
    ("would not", "wouldn't"),
    ("i am ", "i'm "),
    ("i would ", "i'd "),
    ("i will ", "i'll "),
]
_TOKENS = re.compile(r"[a-z][a-z']*|[0-9]+|[^\sa-z0-9]")


def tokens(folded: str) -> list[str]:
    """The words (and punctuation marks) of a casefolded answer with typographic apostrophes
    already made ASCII."""
    for long, short in _NORMALISE:
        if long in folded:
            folded = folded.replace(long, short)
    return _TOKENS.findall(folded)


def features(words: list[str], signals: tuple[str, ...] = ()) -> set[str]:
    """The features a sentence is trained on, by name: present or absent, never counted: a word
    (``w:``), a pair of adjacent words (``b:``, the first pair starting at ``^`` so an opening
    "no," or "sorry" weighs on its own) and the hand-written rules' signals (``r:``).
    ``Model.score`` reads the same features without naming them."""
    found = {"w:" + w for w in words}
    found.update(f"b:{a} {b}" for a, b in zip(["^", *words], words, strict=False))
    found.update("r:" + s for s in signals)
    return found


class ModelError(Exception):
    """The model file is missing or not a model this code can read."""


@dataclass(frozen=True)
class Model:
    words: dict[str, float]
    pairs: dict[tuple[str, str], float]
    signals: dict[str, float]
    bias: float
    threshold: float  # a refusal when a sentence's score (log-odds) is at least this

    def score(self, words: list[str], signals: tuple[str, ...]) -> float:
        """The sum of the weights of ``features(words, signals)``, without building their names
        (this runs on every sentence of every answer ingested)."""
        pairs = self.pairs.get
        total = sum(map(pairs, set(zip(["^", *words], words, strict=False)), _ZEROS))
        total += sum(map(self.words.get, set(words), _ZEROS))
        return self.bias + total + sum(self.signals.get(s, 0.0) for s in signals)


_ZEROS = itertools.repeat(0.0)


def load(path: Path = MODEL_PATH) -> Model:
    """The model at ``path``; a file that is missing or malformed raises ModelError naming the
    file and what is wrong (a detector that silently fell back would change every rate)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: cannot read the refusal model: {error}") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: not a refusal model (format must be {FORMAT!r})")
    weights, bias, threshold = data.get("weights"), data.get("bias"), data.get("threshold")
    # Checked and split in one pass each (52,000 features: this is most of a process's first
    # detector call, 0.1 s before).
    if not isinstance(weights, dict) or not all(type(v) is float or type(v) is int for v in weights.values()):
        raise ModelError(f"{path}: 'weights' must map feature names to numbers")
    for name, value in (("bias", bias), ("threshold", threshold)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ModelError(f"{path}: {name!r} must be a number")
    model = Model({}, {}, {}, float(bias), float(threshold))
    words, pairs, signals = model.words, model.pairs, model.signals
    for name, weight in weights.items():
        kind = name[:2]
        if kind == "b:":
            first, _, second = name[2:].partition(" ")
            if not second:
                raise ModelError(f"{path}: unknown feature {name!r} in 'weights'")
            pairs[first, second] = weight
        elif kind == "w:":
            words[name[2:]] = weight
        elif kind == "r:":
            signals[name[2:]] = weight
        else:
            raise ModelError(f"{path}: unknown feature {name!r} in 'weights'")
    return model


def cached(loader: Callable[[], Model]) -> Callable[[], Model]:
    """``loader`` run once, on first use: importing the detectors reads no file."""
    model: list[Model] = []

    def get() -> Model:
        if not model:
            model.append(loader())
        return model[0]

    get.loaded = lambda: bool(model)  # type: ignore[attr-defined]
    return get
