"""Playing a multi-turn case out: the user's turns (scripted, or a simulated user's) against a
target, turn by turn, into one transcript, one output and one set of metrics.

Pure of targets and models: the target answers through a ``take_turn`` function
(grading_app.targets.live builds it) and the simulated user through a ``next_user_turn``
function (grading_app.personas). What is graded is the last assistant message; the trace is the
transcript as played (user and assistant message steps, the target's tool calls and whatever
else its turns reported); the case's opening ``messages`` stay in its input.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datasets_app.conversations import Conversation
from grading_app.targets import Produced

SUMMED = ("latency_ms", "input_tokens", "output_tokens", "cost_usd", "retries")


@dataclass
class Turn:
    """The target's answer to one user turn: ``reply`` holds this turn's output, trace steps and
    metrics (or its error); ``messages`` is what the turn adds to the conversation sent on the
    next turn (the assistant's message, with its tool calls and their tool messages)."""

    reply: Produced
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class UserTurn:
    """What the simulated user says next; ``done``: the conversation is over (``message``, if
    any, is their closing words, not sent to the target)."""

    message: str
    done: bool = False
    by: str = ""  # who said it: the persona version ("impatient-customer v3"), kept in the trace
    # What asking it cost (input_tokens, output_tokens, cost_usd), kept on the user's step:
    # the evaluation's own spend, never added to the target's metrics.
    usage: dict[str, Any] = field(default_factory=dict)


class UserTurnError(Exception):
    """The simulated user could not say anything (unapproved persona, a failed model call)."""


TakeTurn = Callable[[list[dict[str, Any]], int], Turn]
NextUserTurn = Callable[[Conversation, list[dict[str, Any]], int], UserTurn]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def user_step(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text, **extra}


def _spent_on(steps: list[dict[str, Any]], said: UserTurn) -> bool:
    """Book what the simulated user's closing call cost, when it said nothing, on its last step
    (a step of its own would add an empty line to the transcript); False: there is no such step."""
    if not said.usage:
        return True
    last = next((s for s in reversed(steps) if s.get("simulated_by")), None)
    if last is None:
        return False
    spent = dict(last.get("usage") or {})
    for name, value in said.usage.items():
        spent[name] = spent.get(name, 0) + value
    last["usage"] = spent
    return True


def _has_assistant_message(steps: list[dict[str, Any]]) -> bool:
    return any(s.get("type") == "message" and s.get("role") == "assistant" for s in steps)


def total_metrics(per_turn: list[dict[str, Any]]) -> dict[str, Any]:
    """A conversation's metrics: latency, tokens, cost and retries summed over its turns, the
    time to first token of its first turn, refused/escalated when any turn reported so, and
    the number of turns the target answered."""
    totals: dict[str, Any] = {"turns": len(per_turn)}
    for name in SUMMED:
        values = [m[name] for m in per_turn if m.get(name) is not None]
        if values:
            totals[name] = sum(values)
    if per_turn and per_turn[0].get("ttft_ms") is not None:
        totals["ttft_ms"] = per_turn[0]["ttft_ms"]
    for flag in ("refused", "escalated"):
        reported = [m[flag] for m in per_turn if isinstance(m.get(flag), bool)]
        if reported:
            totals[flag] = any(reported)
    return totals


def play(
    conversation: Conversation, take_turn: TakeTurn, next_user_turn: NextUserTurn | None = None
) -> Produced:
    """Play the conversation: each user turn goes to the target with everything said before.

    It ends after the last scripted turn, when the simulated user says it is done, or at
    ``max_turns``. A turn that fails (the target's error, no answer, the simulated user's
    error) ends it as the result's error, never a pass, with what was said so far as its trace.
    """
    messages = list(conversation.opening)
    steps: list[dict[str, Any]] = []
    per_turn: list[dict[str, Any]] = []
    last: Produced | None = None

    def broken(problem: str) -> Produced:
        return Produced(error=problem[:2000], trace=steps, metrics=total_metrics(per_turn))

    for number in range(1, conversation.max_turns + 1):
        if not conversation.simulated:
            said = UserTurn(conversation.turns[number - 1])
        elif number == 1 and conversation.first_message:
            said = UserTurn(conversation.first_message)
        else:
            try:
                said = next_user_turn(conversation, steps, number)  # type: ignore[misc]
            except UserTurnError as exc:
                return broken(f"the simulated user, turn {number}: {exc}")
        by = {"simulated_by": said.by} if said.by else {}
        if said.usage:
            by["usage"] = said.usage
        if said.done:
            if said.message or not _spent_on(steps, said):
                steps.append(user_step(said.message, done=True, **by))
            break
        messages.append({"role": "user", "content": said.message})
        steps.append(user_step(said.message, **by))
        turn = take_turn(messages, number)
        reply = turn.reply
        if reply.error or (reply.output is None and not reply.trace):
            return broken(
                f"turn {number} of {conversation.max_turns}: {reply.error or 'the target answered nothing'}"
            )
        steps.extend(reply.trace)
        if reply.output not in (None, "") and not _has_assistant_message(reply.trace):
            steps.append({"type": "message", "role": "assistant", "content": reply.output})
        messages.extend(turn.messages)
        per_turn.append(reply.metrics)
        last = reply
    if last is None:
        return broken("the simulated user ended the conversation before the target said anything")
    # The last assistant message is what is graded (a turn of only tool calls: those calls).
    return Produced(output=last.output, trace=steps, metrics=total_metrics(per_turn))


def case_scenario(case_input: Any) -> str:
    """A simulated-user case's scenario ("" for any other case)."""
    spec = case_input.get("simulated_user") if isinstance(case_input, dict) else None
    scenario = spec.get("scenario") if isinstance(spec, dict) else None
    return scenario if isinstance(scenario, str) else ""


def transcript_text(opening: Any, steps: list[dict[str, Any]], final_output: Any = None) -> str:
    """The conversation as a judge or a simulated user reads it, one line per message or step:
    the opening messages, then the steps played (or a single-turn trace), then the output when
    the steps hold no assistant message (a single answer with no trace)."""
    messages = opening if isinstance(opening, list) else []
    lines = [f"{m.get('role', '')}: {_text(m.get('content', ''))}" for m in messages if isinstance(m, dict)]
    for step in steps:
        kind = step.get("type")
        if kind == "message":
            lines.append(f"{step.get('role', '')}: {_text(step.get('content', ''))}")
        elif kind == "tool_call":
            line = f"assistant called {step.get('name', '')}({_text(step.get('arguments', {}))})"
            if step.get("result") is not None:
                line += f" -> {_text(step['result'])}"
            if step.get("error"):
                line += f" [error: {_text(step['error'])}]"
            lines.append(line)
        elif kind == "retrieval":
            ids = [str(d.get("id", "")) if isinstance(d, dict) else "?" for d in step.get("documents") or []]
            lines.append(f"retrieved: {', '.join(ids) or '(nothing)'}")
        elif kind == "approval":
            granted = "granted" if step.get("granted") else "denied"
            lines.append(f"approval of {step.get('tool', '')}: {granted} by {step.get('by', '') or '?'}")
    if final_output not in (None, "") and not _has_assistant_message(steps):
        lines.append(f"assistant: {_text(final_output)}")
    return "\n".join(lines)
