"""Multi-turn cases: the shape of a scripted conversation or a simulated user in a case's input.

A case's ``input`` may hold, besides ``messages`` (the conversation so far, which stays the
opening of the conversation), one of:

- ``turns``: the user's turns of a scripted conversation, each text (or
  ``{"role": "user", "content": text}``, DeepEval's turn shape); the target answers each in turn;
- ``simulated_user``: ``{"rubric": slug, "scenario": text, "opening": text, "max_turns": n}``:
  the rubric's approved version plays the user (grading_app.personas), for at most ``max_turns``
  user turns or until it says it is done.

This module only reads and checks the shape (every problem named by its path); playing a
conversation is grading_app's (grading_app.conversations).
"""

import re
from dataclasses import dataclass, field
from typing import Any

MAX_TURNS = 20  # user turns a conversation may take: bounded, so a case cannot run away
DEFAULT_MAX_TURNS = 5  # a simulated user's limit when the case does not say
SIMULATED_USER_KEYS = ("rubric", "scenario", "opening", "max_turns")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


@dataclass(frozen=True)
class Conversation:
    """What a multi-turn case asks a target to play out."""

    opening: list[dict[str, Any]] = field(default_factory=list)  # input.messages, sent before turn 1
    turns: tuple[str, ...] = ()  # a scripted conversation's user turns
    persona: str = ""  # a simulated user's rubric slug
    scenario: str = ""  # what this simulated user wants, in this case
    first_message: str = ""  # the simulated user's first turn, verbatim (else the persona writes it)
    max_turns: int = 0  # user turns at most (a script: its length)

    @property
    def simulated(self) -> bool:
        return bool(self.persona)


def is_conversation(case_input: Any) -> bool:
    """Whether a case's input asks for a multi-turn conversation (a dict lookup: single-turn
    runs pay nothing more)."""
    return isinstance(case_input, dict) and ("turns" in case_input or "simulated_user" in case_input)


def _turn_text(turn: Any) -> str | None:
    if isinstance(turn, str):
        return turn
    if isinstance(turn, dict) and set(turn) <= {"role", "content"} and turn.get("role", "user") == "user":
        content = turn.get("content")
        return content if isinstance(content, str) else None
    return None


def _max_turns_errors(value: Any, where: str) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TURNS:
        return [f"{where} must be a whole number from 1 to {MAX_TURNS}, not {value!r}."]
    return []


def _simulated_user_errors(spec: Any) -> list[str]:
    where = "input.simulated_user"
    if not isinstance(spec, dict):
        return [f'{where} must be an object, e.g. {{"rubric": "impatient-customer", "max_turns": 5}}.']
    problems = [
        f"{where}.{key}: unknown key (allowed: {', '.join(SIMULATED_USER_KEYS)})."
        for key in sorted(set(spec) - set(SIMULATED_USER_KEYS))
    ]
    rubric = spec.get("rubric")
    if not isinstance(rubric, str) or not _SLUG.match(rubric):
        problems.append(
            f"{where}.rubric is required: the slug of the rubric whose approved version plays the user."
        )
    for key in ("scenario", "opening"):
        if key in spec and (not isinstance(spec[key], str) or not spec[key].strip()):
            problems.append(f"{where}.{key} must be text (leave it out for none).")
    if "max_turns" in spec:
        problems += _max_turns_errors(spec["max_turns"], f"{where}.max_turns")
    return problems


def conversation_errors(case_input: dict[str, Any]) -> list[str]:
    """Every problem of a case input's conversation keys, each naming its path (none: [])."""
    problems: list[str] = []
    if "max_turns" in case_input:
        problems.append(
            "input.max_turns: a turn limit belongs to the simulated user (input.simulated_user.max_turns)."
        )
    if "turns" in case_input and "simulated_user" in case_input:
        return [*problems, "input: give turns (a scripted conversation) or simulated_user, not both."]
    if "turns" in case_input:
        turns = case_input["turns"]
        if not isinstance(turns, list) or not turns:
            return [*problems, "input.turns must be a non-empty list of the user's turns (text)."]
        if len(turns) > MAX_TURNS:
            problems.append(f"input.turns has {len(turns)} turns; a conversation takes at most {MAX_TURNS}.")
        for index, turn in enumerate(turns):
            text = _turn_text(turn)
            if text is None:
                problems.append(
                    f'input.turns[{index}] must be text (or {{"role": "user", "content": text}}), '
                    f"not {turn!r:.80}."
                )
            elif not text.strip():
                problems.append(f"input.turns[{index}] is empty: a user turn says something.")
    if "simulated_user" in case_input:
        problems += _simulated_user_errors(case_input["simulated_user"])
    return problems


def conversation_of(case_input: Any) -> Conversation | None:
    """The conversation a (validated) case input asks for, or None for a single-turn case."""
    if not is_conversation(case_input):
        return None
    opening = list(case_input.get("messages") or [])
    if "turns" in case_input:
        turns = tuple(_turn_text(turn) or "" for turn in case_input["turns"])
        return Conversation(opening=opening, turns=turns, max_turns=len(turns))
    spec = case_input["simulated_user"]
    return Conversation(
        opening=opening,
        persona=spec["rubric"],
        scenario=spec.get("scenario", ""),
        first_message=spec.get("opening", ""),
        max_turns=spec.get("max_turns", DEFAULT_MAX_TURNS),
    )
