"""Forks: a new conversation that branches off another at a turn boundary.

A fork's first event is its ``ConversationCreated`` naming its parent (``ForkPoint``: the parent,
the version, the parent's chain hash there). Nothing of the parent is copied: the fork's history
is read through the link, the parent's turns up to that version, then its own (a fork of a fork
reads through each link, at most ``EngineConfig.max_fork_depth`` of them). The hash commits the
fork to the parent's events up to the version: every read through the link checks it, and so does
``verify``.

A turn boundary is a version at which no turn of the parent is live: its ``ConversationCreated``
(a fork with no earlier turn) or a turn's ``TurnFinalized`` / ``TurnFailed``.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._errors import ConcurrencyError, ConversationExists, ConversationNotFound, IntegrityError, InvalidFork
from ._events import TERMINAL_TYPES, ConversationCreated, ForkPoint, NewEvent, Recorded
from ._log import ChainCheck, EventLog
from ._ports import Messages
from ._request import LogHistory, PriorMessage, drop_turns, prior_messages
from ._trim import apply_trim, trim_oldest_turns


class TurnEngine(Protocol):
    """What a fork needs of the engine (``turnlog.engine.TurnEngine``)."""

    log: EventLog
    messages: Messages
    llm: Any
    config: Any
    clock: Any
    ids: Any

    async def project_created(self, conv: str, recs: list[Recorded]) -> None: ...


async def first_event(log: EventLog, conversation_id: str) -> ConversationCreated:
    """The conversation's ``ConversationCreated``, its stored bytes checked."""
    first = await log.read(conversation_id, 0, 1)
    if not first:
        raise ConversationNotFound(conversation_id)
    ChainCheck(conversation_id).check(first)
    created = first[0].event
    if not isinstance(created, ConversationCreated):
        raise IntegrityError(conversation_id, 1, "the conversation does not start with ConversationCreated")
    return created


async def event_at(log: EventLog, conversation_id: str, version: int) -> Recorded | None:
    """The conversation's event at ``version``, its own stored bytes checked (None: no such one)."""
    if version < 1:
        return None
    found = await log.read(conversation_id, version - 1, 1)
    if not found or found[0].version != version:
        return None
    ChainCheck.after(found[0])
    return found[0]


def link_problem(point: ForkPoint, rec: Recorded | None) -> str:
    """What is wrong with a fork's link to its parent's event (``""``: nothing)."""
    if rec is None:
        return f"its parent {point.conversation_id!r} has no event at version {point.version}"
    if rec.hash != point.hash:
        return (
            f"its parent {point.conversation_id!r} holds hash {rec.hash[:16]} at version {point.version}, "
            f"the fork names {point.hash[:16]}: the parent was changed"
        )
    return ""


async def lineage(log: EventLog, conversation_id: str, created: ConversationCreated, max_depth: int) -> list[ForkPoint]:
    """The fork points of a conversation's ancestors, oldest first (empty: not a fork). Each link
    is checked: the parent's event at the version exists, its bytes hash to its hash, and that is
    the hash the fork names (``IntegrityError`` otherwise)."""
    points: list[ForkPoint] = []
    child, point = conversation_id, created.parent or None
    while point:
        if len(points) >= max_depth:
            raise IntegrityError(child, 1, f"a chain of more than {max_depth} forks (max_fork_depth)")
        why = link_problem(point, await event_at(log, point.conversation_id, point.version))
        if why:
            raise IntegrityError(child, 1, why)
        points.append(point)
        child = point.conversation_id
        point = (await first_event(log, child)).parent or None
    points.reverse()
    return points


async def inherited_history(messages: Messages, log: EventLog, points: list[ForkPoint]) -> list[PriorMessage]:
    """The earlier turns a fork's requests repeat from its ancestors: each parent's up to its fork
    point, oldest first."""
    out: list[PriorMessage] = []
    for point in points:
        out.extend(await messages.history(log, point.conversation_id, point.version))
    return out


#: The longest chain of forks a reader follows (a writer's limit is ``max_fork_depth``): a
#: safety bound only, a chain of hashes cannot loop.
READ_DEPTH = 10_000


async def inherited_prior(log: EventLog, conversation_id: str) -> list[PriorMessage]:
    """A fork's inherited history folded from the log alone (audit, resume): its parents' turns
    up to each fork point, oldest first; empty for a conversation that is not a fork."""
    try:
        created = await first_event(log, conversation_id)
    except ConversationNotFound:
        return []
    if not created.parent:
        return []
    return await inherited_history(LogHistory(), log, await lineage(log, conversation_id, created, READ_DEPTH))


async def fork(
    engine: TurnEngine,
    parent_id: str,
    at_version: int,
    conversation_id: str | None = None,
    *,
    tenant: str | None = None,
    subject: str = "",
    title: str | None = None,
) -> str:
    """Create a conversation that branches off ``parent_id`` at ``at_version`` (a turn boundary):
    its settings are the parent's (provider, system prompt, model, temperature, max tokens,
    thinking, tenant unless given, title unless given); ``subject`` is who forked it. Raises
    ``ConversationNotFound``, ``InvalidFork`` (not a boundary, beyond the parent's head, or a
    chain of forks at ``max_fork_depth``), ``ConversationExists``; nothing is written then."""
    created = await first_event(engine.log, parent_id)
    depth = len(await lineage(engine.log, parent_id, created, READ_DEPTH))
    if depth + 1 > engine.config.max_fork_depth:
        raise InvalidFork(
            parent_id, f"it is a fork {depth} deep already (max_fork_depth {engine.config.max_fork_depth})"
        )
    rec = await event_at(engine.log, parent_id, at_version) if type(at_version) is int else None
    if rec is None:
        last = await engine.log.last(parent_id)
        head = last.version if last is not None else 0
        raise InvalidFork(parent_id, f"at_version {at_version!r} is not a version of it (1..{head})")
    if not isinstance(rec.event, (ConversationCreated, *TERMINAL_TYPES)):
        raise InvalidFork(
            parent_id,
            f"version {at_version} ({rec.type}) is inside a turn; fork at a turn boundary: the conversation's "
            "first event or a turn's last (turn_finalized, turn_failed)",
        )
    conv = conversation_id or engine.ids.new("conv")
    child = ConversationCreated(
        system_prompt=created.system_prompt,
        provider=created.provider,
        model=created.model,
        temperature=created.temperature,
        max_tokens=created.max_tokens,
        thinking=created.thinking,
        tenant=created.tenant if tenant is None else tenant,
        title=created.title if title is None else title,
        subject=subject,
        parent=ForkPoint(parent_id, at_version, rec.hash),
    )
    try:
        recs = await engine.log.append(conv, [NewEvent(child)], 0, recorded_at=engine.clock.now())
    except ConcurrencyError:
        raise ConversationExists(conv) from None
    await engine.project_created(conv, recs)
    return conv


def history_bytes(prior: list[PriorMessage]) -> int:
    """The UTF-8 bytes of what earlier messages repeat (text, calls' arguments, reasoning)."""
    total = 0
    for m in prior:
        total += len(m.text.encode()) + len(m.reasoning.encode())
        for c in m.tool_calls:
            total += len(c.arguments.encode()) + len(c.name)
    return total


async def prior_for_turn(
    engine: TurnEngine, conversation_id: str, created: ConversationCreated, head: int, user_message: str
) -> tuple[list[PriorMessage], int]:
    """The earlier messages a new turn's requests repeat (a fork's parents' turns first), and how
    many of the oldest turns the history trim left out of them."""
    # Read with the readers' bound: a chain made under a larger max_fork_depth stays usable.
    points = await lineage(engine.log, conversation_id, created, READ_DEPTH)
    prior = await inherited_history(engine.messages, engine.log, points)
    prior.extend(await engine.messages.history(engine.log, conversation_id, head))
    budget = engine.config.history_tokens
    if budget is None:
        return prior, 0
    messages = prior_messages(created.system_prompt, prior, round_trip_reasoning=engine.llm.round_trip_reasoning)
    messages.append({"role": "user", "content": user_message})
    dropped = apply_trim(engine.config.history_trim or trim_oldest_turns, messages, budget)
    return drop_turns(prior, dropped), dropped
