"""What of an event is content and what is metadata: every field of every event type is
classified, so a new event type or field cannot reach the log in clear unnoticed; the field
cipher binds each ciphertext to its conversation, event type and field."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.adapters.crypto import CONTENT, ERASED, METADATA, PREFIX, FieldCipher
from turnlog.engine import (
    ConversationCreated,
    Event,
    IntegrityError,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    ToolResultRecorded,
)


def event_types() -> dict[str, type[Event]]:
    return {cls.__struct_config__.tag: cls for cls in Event.__subclasses__()}  # type: ignore[misc]


def test_every_field_of_every_event_type_is_classified_once() -> None:
    missing, doubled, stale = [], [], []
    for tag, cls in event_types().items():
        fields = set(cls.__struct_fields__)
        content, metadata = set(CONTENT.get(tag, ())), set(METADATA.get(tag, ()))
        if tag not in METADATA and tag not in CONTENT:
            missing.append(f"{tag}: the whole type")
        missing += [f"{tag}.{f}" for f in sorted(fields - content - metadata)]
        doubled += [f"{tag}.{f}" for f in sorted(content & metadata)]
        stale += [f"{tag}.{f}" for f in sorted((content | metadata) - fields)]
    assert missing == [], f"classify these in adapters/crypto/_fields.py (CONTENT or METADATA): {missing}"
    assert doubled == [] and stale == []
    assert set(CONTENT) | set(METADATA) <= set(event_types()), "a table names an event type that does not exist"


def test_the_content_the_issue_names_is_content() -> None:
    assert {"user_message", "system_prompt"} <= set(CONTENT["turn_started"])
    assert CONTENT["text_delta"] == ("text",) and CONTENT["reasoning_delta"] == ("text",)
    assert CONTENT["tool_result_recorded"] == ("content",)
    assert "calls" in CONTENT["tool_calls_requested"] and "arguments" in CONTENT["tool_call_started"]
    assert "system_prompt" in CONTENT["conversation_created"]
    # ... and what an audit keeps after erasure is metadata.
    assert {"name", "success", "duration_ms"} <= set(METADATA["tool_result_recorded"])
    assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(METADATA["usage_recorded"])


def counter_nonces():
    n = 0

    def nonce() -> bytes:
        nonlocal n
        n += 1
        return n.to_bytes(12, "big")

    return nonce


def test_content_is_sealed_and_opened_and_metadata_stays_clear() -> None:
    aead = AESGCM(AESGCM.generate_key(256))
    cipher = FieldCipher("conv-1", aead, counter_nonces())
    calls = ToolCallsRequested(iteration=1, calls=[ToolCall("c1", "weather", '{"city":"Oslo"}')])
    sealed = cipher.seal(calls)
    assert isinstance(sealed, ToolCallsRequested)
    assert sealed.calls[0].id == "c1" and sealed.calls[0].name == "weather"
    assert sealed.calls[0].arguments.startswith(PREFIX) and "Oslo" not in sealed.calls[0].arguments
    assert cipher.open(sealed, 3) == calls
    result = ToolResultRecorded(iteration=1, call_id="c1", name="weather", content="12C", success=True, duration_ms=3.0)
    assert cipher.open(cipher.seal(result), 4) == result
    # None and "" stay as they are: only their emptiness shows.
    created = ConversationCreated(system_prompt=None, title="")
    assert cipher.seal(created) is created


def test_deterministic_nonces_give_byte_exact_ciphertext() -> None:
    key = AESGCM.generate_key(256)
    one = FieldCipher("c", AESGCM(key), counter_nonces()).seal(TextDelta(iteration=1, text="hi"))
    two = FieldCipher("c", AESGCM(key), counter_nonces()).seal(TextDelta(iteration=1, text="hi"))
    assert one == two


def test_a_ciphertext_moved_to_another_conversation_or_field_does_not_decrypt() -> None:
    aead = AESGCM(AESGCM.generate_key(256))
    sealed = FieldCipher("conv-1", aead).seal(TextDelta(iteration=1, text="secret"))
    with pytest.raises(IntegrityError, match="does not decrypt"):
        FieldCipher("conv-2", aead).open(sealed, 5)
    moved = ToolResultRecorded(iteration=1, call_id="c", name="n", content=sealed.text, success=True, duration_ms=0.0)
    with pytest.raises(IntegrityError):
        FieldCipher("conv-1", aead).open(moved, 5)


def test_without_the_key_content_reads_erased_and_clear_text_stays_readable() -> None:
    aead = AESGCM(AESGCM.generate_key(256))
    sealed = FieldCipher("conv-1", aead).seal(TextDelta(iteration=1, text="secret"))
    assert FieldCipher("conv-1", None).open(sealed, 2) == TextDelta(iteration=1, text=ERASED)
    # A conversation written before encryption: its clear text is read as it is.
    assert FieldCipher("conv-1", None).open(TextDelta(iteration=1, text="old"), 2).text == "old"
