"""Live targets (openai_chat, http) answering a chunk's cases: one call for a single-turn case,
a conversation played turn by turn for a multi-turn one (grading_app.conversations), its user
scripted by the case or simulated by a persona (grading_app.personas)."""

from collections.abc import Callable
from typing import Any

from datasets_app.conversations import conversation_errors, conversation_of, is_conversation
from grading_app import conversations, personas
from grading_app.choices import TargetKind
from grading_app.models import Target
from grading_app.targets import ChunkCase, Produced, http, openai_chat


def _http_body(case: ChunkCase) -> dict[str, Any]:
    return {
        "case": case.key,
        "input": case.input,
        "tier": case.tier,
        "failure_class": case.failure_class_slug,
    }


def producer(
    target: Target, cases: list[ChunkCase], persona_versions: dict[str, int | None] | None = None
) -> Callable[[ChunkCase], Produced]:
    """A function producing one case's output with ``target``; thread-safe (a chunk calls it
    concurrently). Persona versions (the run's pinned ones) are looked up once here, for the
    cases that need one."""
    users = personas.players_for(cases, persona_versions)

    def single(case: ChunkCase) -> Produced:
        if target.kind == TargetKind.OPENAI_CHAT:
            return openai_chat.produce(target, case.input)
        return http.produce(target, _http_body(case))

    def take_turn(case: ChunkCase) -> conversations.TakeTurn:
        if target.kind == TargetKind.OPENAI_CHAT:
            declared = case.input.get("tool_results") if isinstance(case.input, dict) else None
            return lambda messages, number: openai_chat.turn(target, messages, number, declared)
        return http.conversation(target, _http_body(case))

    def produce(case: ChunkCase) -> Produced:
        if not is_conversation(case.input):
            return single(case)
        if problems := conversation_errors(case.input):  # written before these checks existed
            return Produced(error="the case's conversation is malformed: " + " ".join(problems))
        conversation = conversation_of(case.input)
        user = users.get(conversation.persona) if conversation.simulated else None
        if isinstance(user, str):
            return Produced(error=user)  # not played at all: no target call either
        return conversations.play(conversation, take_turn(case), user)

    return produce
