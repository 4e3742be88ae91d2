"""promptfoo's weighted pass rule -> one `assertion_set` check per test.

promptfoo passes a test when every assertion passes, unless the test has a `threshold`: then
when the weighted mean of the assertions' scores reaches it. An assertion of `weight: 0` never
fails its test; an `assert-set` is scored the same way with its own threshold and counts in
the test with its own weight. Where a test uses any of that, its assertions become one
`assertion_set` (grading_app/graders/composite.py) that computes exactly this.

Judges (llm-rubric, model-graded-closedqa) and latency/cost rules are decided on their own
paths (a signed-off rubric version; a gate rule), never inside a score: where every assertion
must pass they stay checks of their own (the same verdict); inside a weighted score they are
not carried.
"""

from typing import Any

from datasets_app.importers.base import Batch, GraderSpec
from datasets_app.importers.promptfoo.asserts import (
    JUDGES,
    RULE_METRICS,
    Loader,
    Placed,
    Target,
    check_fields,
    is_number,
    nested_set,
    set_fields,
    tag_metric,
    translate_one,
)

KEY = "assertion_set"
# promptfoo scores these by their metric (is-refusal: 0 for a blank answer even when it passes),
# as their graders do; every other carried type scores 1 or 0 by its verdict.
SCORED = {"rouge-n", "similar", "similar:cosine", "similar:dot", "similar:euclidean", "is-refusal"}
EMBEDDING_KIND = "embedding_similarity"


def _zero(value: Any) -> bool:
    return is_number(value) and value == 0


def needs_set(asserts: list[Placed], threshold: float | None) -> bool:
    """Whether all-must-pass would give another verdict than promptfoo for this test."""
    if threshold is not None:
        return True
    for placed in asserts:
        check = placed.check if isinstance(placed.check, dict) else {}
        if _zero(check.get("weight")):
            return True
        if check.get("type") == "assert-set":
            if check.get("threshold") is not None:
                return True
            if any(isinstance(m.check, dict) and _zero(m.check.get("weight")) for m in placed.members()):
                return True
    return False


class _Capture:
    """The import's batch for one assertion inside a set: its errors and drops are the
    import's, but the grader it needs is the set's member, not a grader of the import."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        self.graders: list[GraderSpec] = []

    def need_grader(self, spec: GraderSpec) -> None:
        self.graders.append(spec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)


class _Weighted:
    """One test's assertions as an assertion_set; checks of their own where they must be."""

    def __init__(self, batch: Batch, target: Target, load: Loader, threshold: float | None) -> None:
        self.batch, self.target, self.load, self.threshold = batch, target, load, threshold
        self.embeddings = False

    def member(self, placed: Placed, *, in_threshold: bool) -> dict[str, Any] | None:
        if not check_fields(self.batch, placed.line, placed.check):
            return None
        if placed.check["type"] == "assert-set":
            return self.assert_set(placed)
        return self.leaf(placed, in_threshold=in_threshold)

    def assert_set(self, placed: Placed) -> dict[str, Any] | None:
        check, line = placed.check, placed.line
        if not set_fields(self.batch, placed):
            return None
        tag_metric(check, self.target)
        threshold = check.get("threshold")
        in_threshold = self.threshold is not None or threshold is not None
        members = self.members(
            [m for m in placed.members() if not nested_set(self.batch, m)],
            in_threshold=in_threshold,
            where=(
                placed.file,
                line,
                "assert-set threshold" if threshold is not None else "test threshold",
            ),
        )
        if not members and not in_threshold:
            return None  # its checks stand on their own; an empty set that decides nothing
        found: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
        found["assertions"] = members
        if "weight" in check:
            found["weight"] = check["weight"]
        return found

    def members(
        self, asserts: list[Placed], *, in_threshold: bool, where: tuple[str, int, str]
    ) -> list[dict[str, Any]]:
        """The carried members of a set; where a weighted score loses some, it says so."""
        members, lost = [], 0
        for placed in asserts:
            before = len(self.batch.dropped)
            with self.batch.in_file(placed.file):
                carried = self.member(placed, in_threshold=in_threshold)
            if carried is not None:
                members.append(carried)
            elif len(self.batch.dropped) > before:
                lost += 1
        if in_threshold and lost:
            file, line, construct = where
            with self.batch.in_file(file):
                self.batch.drop(
                    line,
                    construct,
                    f"the weighted score is taken over the assertions carried: the {lost} not "
                    "carried (each listed with its line) are left out of it",
                )
        return members

    def leaf(self, placed: Placed, *, in_threshold: bool) -> dict[str, Any] | None:
        check = placed.check
        kind = check["type"]
        if kind in JUDGES or kind in RULE_METRICS:
            return self.outside(placed, in_threshold=in_threshold)
        capture = _Capture(self.batch)
        own = Target(expected={}, tags=[], tools=self.target.tools)
        translate_one(capture, placed, own, self.load)  # type: ignore[arg-type]
        self.target.tags.extend(t for t in own.tags if t not in self.target.tags)
        if not capture.graders:
            return None  # dropped or in error: the batch says why
        (grader,) = capture.graders
        found: dict[str, Any] = {"kind": grader.kind, "expected": own.expected}
        if grader.config:
            found["config"] = grader.config
        if "weight" in check:
            found["weight"] = check["weight"]
        if (kind[4:] if kind.startswith("not-") else kind) not in SCORED:
            found["binary"] = True
        self.embeddings = self.embeddings or grader.kind == EMBEDDING_KIND
        return found

    def outside(self, placed: Placed, *, in_threshold: bool) -> None:
        """A judge or a latency/cost rule in a test that needs a set: a check of its own when
        every assertion must pass anyway; else not carried, saying why."""
        kind = placed.check["type"]
        what = (
            "a judge decides on its own signed-off rubric version"
            if kind in JUDGES
            else ("a latency or cost budget is a gate rule over the run")
        )
        if in_threshold:
            self.batch.drop(
                placed.line,
                f"assert {kind}",
                f"inside a weighted score (a threshold): {what}, never part of a case's score; "
                "the threshold is carried over the other assertions",
            )
        elif _zero(placed.check.get("weight")):
            self.batch.drop(
                placed.line,
                f"assert {kind}",
                "weight 0: promptfoo reports it but never fails the test on it, and a check that "
                "decides nothing is not carried",
            )
        else:
            translate_one(self.batch, placed, self.target, self.load)


def translate_weighted(
    batch: Batch,
    asserts: list[Placed],
    target: Target,
    load: Loader,
    threshold: float | None,
    where: tuple[str, int],
) -> None:
    """Carry a test's assertions as one assertion_set under expected.assertion_set; ``where``
    is the file and line of its threshold (of the test, when it has none)."""
    weighted = _Weighted(batch, target, load, threshold)
    members = weighted.members(asserts, in_threshold=threshold is not None, where=(*where, "threshold"))
    if not members:
        return
    value: dict[str, Any] = {} if threshold is None else {"threshold": threshold}
    value["assertions"] = members
    target.expected[KEY] = value
    if weighted.embeddings:
        # Its similarity checks ask the embedding endpoint the importer names (import_plans).
        config = {"embedding_endpoint": "", "embedding_model": ""}
        batch.need_grader(GraderSpec("assertion-set-similar", KEY, config))
    else:
        batch.need_grader(GraderSpec("assertion-set", KEY, {}))
