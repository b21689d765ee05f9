"""The pure parts of the acknowledgement seam: codes and link tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from router.acks import TokenError, ack_code, sign_token, verify_token

KEY = b"k" * 32
NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)


def test_code_is_four_digits_and_stable() -> None:
    codes = {ack_code(f"inc-{i:016x}") for i in range(2000)}
    assert all(len(c) == 4 and c.isdigit() and c[0] != "0" for c in codes)
    assert ack_code("inc-0123456789abcdef") == ack_code("inc-0123456789abcdef")
    assert len(codes) > 1500  # spread, not a constant


def test_token_round_trip() -> None:
    token = sign_token(KEY, "inc-1", "alice", NOW + timedelta(hours=1))
    grant = verify_token(KEY, token, NOW)
    assert (grant.incident_id, grant.contact_id) == ("inc-1", "alice")
    assert grant.expires_at == NOW + timedelta(hours=1)


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
    lambda t: "x" + t,  # payload
    lambda t: t.replace(".", ""),  # no separator
    lambda t: "",  # empty
])
def test_forged_or_malformed_tokens_are_refused(mutate: object) -> None:
    token = sign_token(KEY, "inc-1", "alice", NOW + timedelta(hours=1))
    with pytest.raises(TokenError):
        verify_token(KEY, mutate(token), NOW)  # type: ignore[operator]


def test_token_from_another_key_is_refused() -> None:
    token = sign_token(b"other-key", "inc-1", "alice", NOW + timedelta(hours=1))
    with pytest.raises(TokenError, match="signature"):
        verify_token(KEY, token, NOW)


def test_expired_token_is_refused() -> None:
    token = sign_token(KEY, "inc-1", "alice", NOW + timedelta(minutes=1))
    with pytest.raises(TokenError, match="expired"):
        verify_token(KEY, token, NOW + timedelta(minutes=1))
