"""The audit key and the chain's links: what goes into a hash, and where the key comes from."""

from __future__ import annotations

import os
from unittest import mock
from uuid import uuid4

import pytest
from pydantic import SecretStr

from infrastructure.hash_chain import ChainKey, chain_key
from infrastructure.settings import SettingsError, load_settings


def test_every_stored_part_of_an_event_changes_its_stream_hash() -> None:
    """Previous hash, stream id, version, topic and state each change the link."""
    key = ChainKey(b"k" * 32)
    stream = uuid4()
    base = key.stream_hash(None, stream, 2, "a:B", b"{}")
    variants = [
        key.stream_hash(b"\1" * 32, stream, 2, "a:B", b"{}"),
        key.stream_hash(None, uuid4(), 2, "a:B", b"{}"),
        key.stream_hash(None, stream, 3, "a:B", b"{}"),
        key.stream_hash(None, stream, 2, "a:C", b"{}"),
        key.stream_hash(None, stream, 2, "a:B", b"{ }"),
        # The topic is length-prefixed: moving bytes between topic and state is seen.
        key.stream_hash(None, stream, 2, "a:B{", b"}"),
        ChainKey(b"j" * 32).stream_hash(None, stream, 2, "a:B", b"{}"),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_the_log_hash_covers_its_predecessor_position_and_stream_hash() -> None:
    """The log link changes with the previous log hash, the position and the stream hash."""
    key = ChainKey(b"k" * 32)
    base = key.log_hash(None, 7, b"s" * 32)
    others = {
        key.log_hash(b"p" * 32, 7, b"s" * 32),
        key.log_hash(None, 8, b"s" * 32),
        key.log_hash(None, 7, b"t" * 32),
    }
    assert base not in others and len(others) == 3


def test_without_an_audit_key_one_is_derived_from_the_secret_key() -> None:
    """The derived key is stable for one secret key, differs between secret keys, and is
    not the secret key itself; a configured audit key wins."""
    first = chain_key(None, SecretStr("secret-one"))
    assert first == chain_key(None, SecretStr("secret-one"))
    assert first != chain_key(None, SecretStr("secret-two"))
    assert first.key != b"secret-one"
    configured = chain_key(SecretStr("a" * 32), SecretStr("secret-one"))
    assert configured.key == b"a" * 32
    with pytest.raises(ValueError, match="CUSTOMERS_AUDIT_KEY"):
        chain_key(None, None)


def test_a_short_audit_key_stops_start_up_without_echoing_it() -> None:
    """An audit key under 32 characters is refused naming the variable, never its value."""
    with (
        mock.patch.dict(os.environ, {"CUSTOMERS_AUDIT_KEY": "hunter2"}),
        pytest.raises(SettingsError) as refused,
    ):
        load_settings()
    assert "CUSTOMERS_AUDIT_KEY" in str(refused.value) and "hunter2" not in str(refused.value)
