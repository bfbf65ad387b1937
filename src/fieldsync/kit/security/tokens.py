"""Access tokens: short-lived EdDSA JWTs that any service verifies with the public key.

Verification pins everything an attacker could bend: the algorithm (EdDSA only, so
`alg: none` and HMAC-with-the-public-key tokens fail), the header `typ` (`at+jwt`,
RFC 9068, so no other JWT passes as an access token), the `kid` (only known keys),
and the `iss`, `aud`, `exp`, `nbf` and `iat` claims, all required.

A client sends the same access token with every request for its lifetime, and the
signature check is most of a request's CPU on a small machine (an Ed25519 verify plus
PyJWT's parsing, ~0.2 ms of a ~1 ms GET). A verifier therefore remembers the tokens it
has verified, keyed by the whole token string (a byte-identical token), and re-checks
only the expiry on a hit. The memory is bounded (`VERIFIED_CACHE_SIZE`, oldest out
first): a plain dict in insertion order does this in a few lines, so no cache library.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.errors import Unauthorized
from fieldsync.kit.security.keys import SigningKey, VerificationKey

ALGORITHM = "EdDSA"
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - the JWT `typ` of access tokens
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub", "org", "role", "sid", "jti"]
# Clock skew tolerated between the signer and verifiers.
LEEWAY_SECONDS = 5
# Verified tokens remembered per process (about 1 KiB each with their caller).
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class TokenSettings:
    """Issuer, audience and lifetime shared by signer and verifiers."""

    issuer: str
    audience: str
    lifetime_seconds: int


class TokenSigner:
    """Issues access tokens (api service only: it alone holds the private key)."""

    def __init__(self, key: SigningKey, settings: TokenSettings) -> None:
        self._key = key
        self._settings = settings

    @property
    def lifetime_seconds(self) -> int:
        """How long an access token lives."""
        return self._settings.lifetime_seconds

    def issue(self, caller: Caller, *, now: float | None = None) -> str:
        """A signed access token for `caller`."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": str(caller.user_id),
            "org": str(caller.organization_id),
            "role": caller.role.value,
            "sid": str(caller.session_id),
            "iat": issued,
            "nbf": issued,
            "exp": issued + self._settings.lifetime_seconds,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self._key.key_id, "typ": ACCESS_TOKEN_TYPE}
        return jwt.encode(claims, self._key.private_key, algorithm=ALGORITHM, headers=headers)


def _peek_header(token: str) -> dict[str, Any]:
    """The JOSE header, read before verification only to pick the key and reject early.

    PyJWT re-reads and verifies it in `decode`; this is a cheap pre-check (PyJWT's own
    `get_unverified_header` costs about a quarter of a whole verification).
    """
    encoded = token.split(".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        raise Unauthorized("malformed access token") from None
    if not isinstance(header, dict):
        raise Unauthorized("malformed access token")
    return header


class TokenVerifier:
    """Checks access tokens with public keys only."""

    def __init__(self, keys: list[VerificationKey], settings: TokenSettings) -> None:
        self._keys: Mapping[str, VerificationKey] = {key.key_id: key for key in keys}
        self._settings = settings
        # token -> (caller, expiry): tokens whose signature and claims were verified.
        self._verified: dict[str, tuple[Caller, float]] = {}

    def verify(self, token: str, *, now: float | None = None) -> Caller:
        """The caller named by a valid token; any defect raises Unauthorized."""
        now = time.time() if now is None else now
        remembered = self._verified.get(token)
        if remembered is not None:
            caller, expires = remembered
            if now < expires + LEEWAY_SECONDS:
                return caller
            del self._verified[token]
            raise Unauthorized("access token expired")
        caller, expires = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (caller, expires)
        return caller

    def _verify_signed(self, token: str) -> tuple[Caller, float]:
        header = _peek_header(token)
        if header.get("alg") != ALGORITHM or header.get("typ") != ACCESS_TOKEN_TYPE:
            raise Unauthorized("not an access token")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise Unauthorized("access token signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "verify_iat": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("access token expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid access token") from None
        try:
            # Each field is converted (and so validated) explicitly: no second pass needed.
            caller = Caller.model_construct(
                user_id=uuid.UUID(claims["sub"]),
                organization_id=uuid.UUID(claims["org"]),
                role=Role(claims["role"]),
                session_id=uuid.UUID(claims["sid"]),
            )
            return caller, float(claims["exp"])
        except (ValueError, TypeError, AttributeError):
            raise Unauthorized("invalid access token claims") from None
