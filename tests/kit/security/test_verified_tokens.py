"""A verifier remembers tokens it verified, but never past their expiry."""

from __future__ import annotations

import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.errors import Unauthorized
from fieldsync.kit.security import tokens
from fieldsync.kit.security.keys import SigningKey
from fieldsync.kit.security.tokens import (
    LEEWAY_SECONDS,
    TokenSettings,
    TokenSigner,
    TokenVerifier,
)

SETTINGS = TokenSettings(issuer="fieldsync-test", audience="fieldsync", lifetime_seconds=60)


def signer_and_verifier() -> tuple[TokenSigner, TokenVerifier]:
    key = SigningKey("k1", Ed25519PrivateKey.generate())
    return TokenSigner(key, SETTINGS), TokenVerifier([key.verification], SETTINGS)


def a_caller(role: Role = Role.MANAGER) -> Caller:
    return Caller(
        user_id=uuid.uuid4(), organization_id=uuid.uuid4(), role=role, session_id=uuid.uuid4()
    )


def test_a_remembered_token_expires_on_time() -> None:
    signer, verifier = signer_and_verifier()
    caller = a_caller()
    issued = time.time()
    token = signer.issue(caller, now=issued)

    assert verifier.verify(token) == caller
    # A hit re-checks the expiry against the clock it is given.
    assert verifier.verify(token, now=issued + 59) == caller
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token, now=issued + 60 + LEEWAY_SECONDS + 1)
    # Forgotten once expired: the next attempt is a full verification, which PyJWT
    # refuses on the real clock only after expiry, so the token is still good now.
    assert verifier.verify(token) == caller


def test_only_the_byte_identical_token_is_remembered() -> None:
    signer, verifier = signer_and_verifier()
    token = signer.issue(a_caller(Role.TECHNICIAN))
    assert verifier.verify(token).role is Role.TECHNICIAN

    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{header}.{payload}.{flipped}", token + "=", f"{header}.{payload}."):
        with pytest.raises(Unauthorized):
            verifier.verify(forged)


def test_a_token_from_another_key_is_refused_even_after_a_good_one() -> None:
    signer, verifier = signer_and_verifier()
    other_signer, _ = signer_and_verifier()
    caller = a_caller()
    assert verifier.verify(signer.issue(caller)) == caller
    with pytest.raises(Unauthorized):
        verifier.verify(other_signer.issue(caller))


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    signer, verifier = signer_and_verifier()
    issued = [(signer.issue(caller), caller) for caller in (a_caller() for _ in range(5))]
    for token, caller in issued:
        assert verifier.verify(token) == caller
    assert len(verifier._verified) == 3
    assert list(verifier._verified) == [token for token, _ in issued[2:]]
    # An evicted token is verified again, not refused.
    assert verifier.verify(issued[0][0]) == issued[0][1]
