"""The transcript projection: a stable, readable rendering of turns for snapshot tests.

Stable means: ids that a run invents (conversation, turn and message ids) are replaced by their
order of appearance (``<turn-1>``, ``<msg-2>``), times and tool durations are left out, and each
iteration's deltas are shown joined with their count. What the model was sent is shown by the
first 16 hex digits of the request digest and, under it, a summary of that request rebuilt from
the events with the engine's request builder (``PriorTurns``, ``TurnHistory``): the model, the
system prompt (clipped), the tools offered and the roles of its messages, so a snapshot diff says
what changed in a request, not only that its digest did. What it answered, verbatim. Who acted
(tenant and subject) is shown on the conversation, turn and cancel lines.

A fork's conversation line is followed by the conversation and version it branched off. Its
events alone do not hold what its requests repeated from its parents: ``inherited`` (the
engine's ``inherited_prior``) gives those turns, so the request summaries count them as the
engine sent them; without it a fork's summaries show only its own turns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence

from turnlog.engine import (
    ApprovalDecided,
    ApprovalRequested,
    CancelRequested,
    ConversationCreated,
    ConversationErased,
    IterationStarted,
    LLMRequest,
    PriorMessage,
    PriorTurns,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnHistory,
    TurnResumed,
    TurnStarted,
    UsageRecorded,
)

from ._messages import ShownText

#: Longest system prompt shown in a request summary (the full one is on the conversation line).
CLIP = 40


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _actor(tenant: str, subject: str) -> str:
    return f"tenant={_q(tenant)} subject={_q(subject)}"


def _tool_names(tools: list[dict]) -> str:
    return ",".join(t.get("function", {}).get("name", "?") for t in tools) or "-"


def _summary(request: LLMRequest, model: str) -> str:
    """What a request carried, in one line: enough to see what changed between two runs."""
    system = next((m.get("content") for m in request.messages if m.get("role") == "system"), None)
    if isinstance(system, str):
        system = _q(system if len(system) <= CLIP else system[: CLIP - 1] + "…")
    roles = ", ".join(str(m.get("role")) for m in request.messages)
    return (
        f"    sent: model={model or '-'} system={system or '-'} tools={_tool_names(request.tools)} "
        f"messages={len(request.messages)} ({roles})"
    )


class _Names:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}
        self._count: dict[str, int] = {}

    def __call__(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._seen:
            n = self._count.get(kind, 0) + 1
            self._count[kind] = n
            self._seen[key] = f"<{kind}-{n}>"
        return self._seen[key]


class _Deltas:
    """One step's deltas: how many, and their text (``ShownText``: an erased conversation's run
    of ``ERASED_TEXT`` kept once, the parts joined in chunks of a few thousand), so a step of a
    million deltas holds its text, not a million strings."""

    __slots__ = ("count", "parts")

    def __init__(self) -> None:
        self.count = 0
        self.parts = ShownText()

    def add(self, text: str) -> None:
        self.count += 1
        self.parts.add(text)

    def line(self, kind: str) -> str:
        """The step's line; the deltas are released."""
        text = self.parts.join()
        self.parts = ShownText()  # the parts go before the text is quoted: one copy less at the peak
        quoted = _q(text)
        del text
        line = f"    {kind} ({self.count} deltas): {quoted}\n"
        self.count = 0
        return line


def render(events: Iterable[Recorded], inherited: Sequence[PriorMessage] = ()) -> str:
    """The transcript of these events, as one text (``transcript_lines`` joined)."""
    return "".join(transcript_lines(events, inherited))


def transcript_lines(events: Iterable[Recorded], inherited: Sequence[PriorMessage] = ()) -> Iterator[str]:
    """The transcript, one line (with its newline) at a time, each yielded as soon as it is known:
    a step's deltas once the step is over. Memory holds the current step's text and the request
    builder's messages, never the transcript so far. ``inherited``: a fork's parents' turns up to
    its fork point (``turnlog.engine.inherited_prior``), which its requests repeated."""
    shown = False
    for line in _lines(events, inherited):
        shown = True
        yield line
    if not shown:  # no events: one empty line, as ever
        yield "\n"


def _lines(events: Iterable[Recorded], inherited: Sequence[PriorMessage] = ()) -> Iterator[str]:
    names = _Names()
    out: list[str] = []
    thinking = _Deltas()
    text = _Deltas()
    # The request builder, fed the events as the engine feeds it (prior turns, then this turn's),
    # words aside (below).
    prior = PriorTurns(inherited)
    history: TurnHistory | None = None

    parked = False

    def flush_deltas() -> Iterator[str]:
        if thinking.count:
            yield thinking.line("thinking")
        if text.count:
            yield text.line("text")

    # The summary shows a request's roles, never its words: whether an iteration answered with
    # text decides if its message is there, so the builder is fed the first non-empty text delta
    # of each iteration and no reasoning (its text is held once, here, not three times).
    worded = False
    for rec in events:
        ev = rec.event
        if type(ev) is TextDelta:
            text.add(ev.text)
            if worded or not ev.text:
                continue
            worded = True
        elif type(ev) is ReasoningDelta:
            thinking.add(ev.text)
            continue
        elif type(ev) is IterationStarted or type(ev) is TurnStarted:
            worded = False
        if isinstance(ev, TurnStarted):
            # Round-tripped reasoning changes a message's fields, not its role: not needed here.
            history = TurnHistory(prior.for_turn(ev), ev, round_trip_reasoning=False)
        elif history is not None and not isinstance(ev, IterationStarted):
            history.apply(ev)
        prior.apply(ev)
        if type(ev) is TextDelta:
            continue
        yield from flush_deltas()
        if isinstance(ev, ConversationCreated):
            out.append(
                f"conversation {names('conv', rec.stream_id)} provider={ev.provider} model={ev.model} "
                f"{_actor(ev.tenant, ev.subject)}"
            )
            if ev.parent:
                # The parent's name only: its chain hash there moves with every run's ids and times.
                out.append(f"  forked from {names('conv', ev.parent.conversation_id)} at v{ev.parent.version}")
            if ev.system_prompt:
                out.append(f"  system: {_q(ev.system_prompt)}")
        elif isinstance(ev, TurnStarted):
            tools = _tool_names(ev.tools)
            out.append(f"turn {names('turn', rec.turn_id)} v{rec.version} {_actor(ev.tenant, ev.subject)}")
            out.append(
                f"  settings: provider={ev.provider} model={ev.model} thinking={'on' if ev.thinking else 'off'} "
                f"temperature={ev.temperature} max_tokens={ev.max_tokens} max_iterations={ev.max_iterations} "
                f"tools={tools} level={ev.permission_level}"
            )
            names("msg", ev.user_message_id)
            names("msg", ev.assistant_message_id)
            out.append(f"  user {names('msg', ev.user_message_id)}: {_q(ev.user_message)}")
        elif isinstance(ev, IterationStarted):
            out.append(f"  iteration {ev.iteration} request sha256:{ev.request_sha256[:16]}")
            if history is not None:
                # Rendered before IterationStarted is applied, as the engine renders it.
                request = history.request()
                out.append(_summary(request, ev.model or request.model))
                history.apply(ev)
        elif isinstance(ev, UsageRecorded):
            out.append(
                f"    usage: prompt={ev.prompt_tokens} completion={ev.completion_tokens} total={ev.total_tokens}"
            )
        elif isinstance(ev, ToolCallsRequested):
            out.append(f"    tool calls requested (finish={ev.finish_reason}):")
            for c in ev.calls:
                out.append(f"      {c.id} {c.name} {c.arguments}")
        elif isinstance(ev, ToolCallStarted):
            out.append(f"    tool_call {ev.call_id} {ev.name} {ev.arguments}")
        elif isinstance(ev, ToolResultRecorded):
            status = "ok" if ev.success else "FAILED"
            out.append(f"    tool_result {ev.call_id} {ev.name} {status}: {_q(ev.content)}")
        elif isinstance(ev, TurnFinalized):
            u = ev.usage
            out.append(
                f"  finalized {names('msg', ev.message_id)} finish={ev.finish_reason} token_count={ev.token_count} "
                f"usage={u.prompt_tokens}/{u.completion_tokens}/{u.total_tokens}"
            )
        elif isinstance(ev, TurnFailed):
            out.append(f"  failed reason={ev.reason} iteration={ev.iteration}: {_q(ev.message)}")
        elif isinstance(ev, CancelRequested):
            out.append(f"  cancel requested v{rec.version} {_actor(ev.tenant, ev.subject)} reason={_q(ev.reason)}")
        elif isinstance(ev, ApprovalRequested):
            out.append(f"    approval required {ev.call_id} {ev.name} {ev.arguments}")
        elif isinstance(ev, ApprovalDecided):
            out.append(
                f"  approval decided v{rec.version} {ev.call_id} {ev.decision} {_actor(ev.tenant, ev.subject)} "
                f"reason={_q(ev.reason)}"
            )
        elif isinstance(ev, ConversationErased):
            out.append(
                f"erased v{rec.version} at {rec.recorded_at} {_actor(ev.tenant, ev.subject)} reason={_q(ev.reason)}"
            )
        elif isinstance(ev, TurnResumed):
            out.append(
                f"  resumed v{rec.version} cause={ev.cause} owner={_q(ev.owner)} {_actor(ev.tenant, ev.subject)}"
            )
        parked = type(ev) is ApprovalRequested or type(ev) is ApprovalDecided
        for line in out:
            yield line + "\n"
        out.clear()
    yield from flush_deltas()
    if parked:
        yield "  parked: awaiting approval\n"
