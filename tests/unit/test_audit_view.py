"""What an audit view (the global log, the export, a replay) shows of an event's payload."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from infrastructure.audit_log import MASK, event_payload, masked


@dataclass(frozen=True)
class _System:
    system_type: str
    sealed_secret: str | None


def test_the_payload_leaves_out_the_envelope_and_masks_secrets_and_credential_hashes() -> None:
    """Sealed secrets, sealed tokens and password or token hashes show as the mask, nested
    in value objects and lists too; an unset one stays null; the envelope is not payload."""
    event = SimpleNamespace(
        originator_id="id",
        originator_version=3,
        timestamp="t",
        actor="bob",
        correlation_id="r",
        password_hash="$argon2id$...",
        token_hash="ab12",
        sealed_token="gAAAA",
        systems=[_System("alarm", "gAAAA-sealed"), _System("nvr", None)],
        text="gate code changes monthly",
    )
    assert event_payload(event) == {
        "password_hash": MASK,
        "token_hash": MASK,
        "sealed_token": MASK,
        "systems": [
            {"system_type": "alarm", "sealed_secret": MASK},
            {"system_type": "nvr", "sealed_secret": None},
        ],
        "text": "gate code changes monthly",
    }
    assert masked({"sealed_secret": "x"}) == {"sealed_secret": MASK}
