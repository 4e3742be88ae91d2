"""Simulated users: the approved version of a persona rubric plays the user of a multi-turn case.

The version's criteria say who the user is and what they want, its prompt template (start one
from ``template: simulated_user``) how it is asked, and it runs on the version's endpoint and
model, like a judge: one JSON answer per user turn, ``{"message": ..., "done": ...}``, at
temperature 0. As with judges, only an approved version counts: a case whose persona has no
approved version is not played at all (its result's error says so). The conversation renders
between the untrusted tags (grading_app.judging), so nothing the assistant says can steer the user.

Answers are not cached: a conversation is a live exchange, and each trial of a case is a new one.
"""

import dataclasses
import json
import threading
from collections.abc import Iterable
from typing import Any

from datasets_app.conversations import Conversation, conversation_of
from datasets_app.models import Case
from grading_app import judging, llm
from grading_app.conversations import UserTurn, UserTurnError, transcript_text
from grading_app.models import Rubric, RubricVersion

NOT_STARTED = "(nothing yet: the conversation starts with your message)"


def parse_user_turn(content: str | None) -> UserTurn:
    """The simulated user's answer as a UserTurn; JudgeError (asked again) names what is wrong."""
    try:
        data = json.loads(content or "")
    except ValueError:
        raise llm.JudgeError(f"the simulated user's answer is not JSON: {(content or '')[:200]!r}") from None
    if not isinstance(data, dict):
        raise llm.JudgeError("the simulated user's answer is not a JSON object")
    done, message = data.get("done", False), data.get("message", "")
    if not isinstance(done, bool):
        raise llm.JudgeError(f"the simulated user's 'done' must be true or false, got {done!r}")
    if not isinstance(message, str) or not (done or message.strip()):
        raise llm.JudgeError(
            f"the simulated user's 'message' must be text (empty only when done), got {message!r}"
        )
    return UserTurn(message.strip(), done)


def render_prompt(
    version: RubricVersion, conversation: Conversation, steps: list[dict[str, Any]], turn: int
) -> str:
    """The persona's prompt for its ``turn``-th message; deterministic for the same conversation."""
    last = next(
        (
            s.get("content")
            for s in reversed(steps)
            if s.get("type") == "message" and s.get("role") == "assistant"
        ),
        "",
    )
    last_text = last if isinstance(last, str) else json.dumps(last, ensure_ascii=False, sort_keys=True)
    transcript = transcript_text(conversation.opening, steps) or NOT_STARTED
    tag = judging.output_tag(transcript)
    values = {
        "criteria": version.criteria,
        "examples": judging.examples_text(version),
        "scenario": conversation.scenario or "(none)",
        "transcript": judging.untrusted_block(transcript, tag),
        "output": judging.escape_output(last_text),
        "tag": tag,
        "turn": str(turn),
        "max_turns": str(conversation.max_turns),
    }
    return judging.fill(version.prompt_template, values)


class SimulatedUser:
    """One persona version, asked within its endpoint's concurrency (shared by the chunk's
    conversations); retries and timeouts are the endpoint's, as for a judge."""

    def __init__(self, version: RubricVersion, limit: threading.Semaphore) -> None:
        self.version = version
        self.limit = limit

    def __call__(self, conversation: Conversation, steps: list[dict[str, Any]], turn: int) -> UserTurn:
        prompt = render_prompt(self.version, conversation, steps, turn)
        with self.limit:
            try:
                said, usage = llm.ask_json(self.version.endpoint, self.version.model, prompt, parse_user_turn)
            except llm.JudgeError as exc:
                raise UserTurnError(f"{self.version.rubric.slug} v{self.version.number}: {exc}") from None
        tokens_in, tokens_out = (
            llm.token_count(usage, "prompt_tokens"),
            llm.token_count(usage, "completion_tokens"),
        )
        spent = {
            "calls": 1,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cost_usd": self.version.endpoint.cost_usd(tokens_in, tokens_out),
        }
        return dataclasses.replace(said, by=f"{self.version.rubric.slug} v{self.version.number}", usage=spent)


def _unplayable(slug: str, version: RubricVersion | None, known: set[str]) -> str:
    if slug not in known:
        return f"the simulated user's rubric {slug!r} does not exist"
    if version is None:
        return (
            f"the simulated user's rubric {slug!r} has no approved version: a persona plays users only once "
            "an owner of the rubric has signed a version off (never a pass)"
        )
    return (
        f"{slug} v{version.number} is not written for a simulated user: its prompt template has no "
        "{transcript} (start a version from template: simulated_user)"
    )


def persona_slugs(cases: Iterable[Case]) -> set[str]:
    """The persona rubrics the cases' simulated users name."""
    slugs = set()
    for case in cases:
        conversation = _conversation(case.input)
        if conversation is not None and conversation.simulated:
            slugs.add(conversation.persona)
    return slugs


def players_for(
    cases: Iterable[Case], pinned: dict[str, int | None] | None = None
) -> dict[str, SimulatedUser | str]:
    """For each persona the cases name: who plays it, or why nobody may. ``pinned``: the run's
    persona versions (Run.persona_versions, fixed when it started); without it (a run from
    before pinning) the rubric's latest approved version. One query, and none at all when no
    case has a simulated user."""
    slugs = persona_slugs(cases)
    if not slugs:
        return {}
    if pinned:
        ids = {pinned[slug] for slug in slugs if pinned.get(slug)}
        chosen = RubricVersion.objects.filter(pk__in=ids).select_related("rubric", "endpoint")
        latest = {version.rubric.slug: version for version in chosen}
    else:
        latest = RubricVersion.objects.latest_approved_by_slug(slugs)
    missing = slugs - latest.keys()
    known = set(latest) | set(
        Rubric.objects.filter(slug__in=missing).values_list("slug", flat=True) if missing else ()
    )
    limits: dict[int, threading.Semaphore] = {}
    players: dict[str, SimulatedUser | str] = {}
    for slug in slugs:
        version = latest.get(slug)
        if version is None or "{transcript}" not in version.prompt_template:
            players[slug] = _unplayable(slug, version, known)
            continue
        limit = limits.setdefault(
            version.endpoint_id, threading.BoundedSemaphore(version.endpoint.max_concurrency)
        )
        players[slug] = SimulatedUser(version, limit)
    return players


def _conversation(case_input: Any) -> Conversation | None:
    try:
        return conversation_of(case_input)
    except (KeyError, TypeError, AttributeError):
        return None  # malformed: the case's result says so (grading_app.targets.live)
