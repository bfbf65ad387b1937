"""Access tokens: every forged, stale or misdirected token answers 401.

Each forgery starts from the claims of a real token and changes one thing, and
the unchanged crafted token is accepted, so every 401 is caused by the one defect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fieldsync.kit.security.keys import (
    SigningKey,
    load_signing_key,
    public_pem,
    thumbprint,
)
from tests.api.conftest import (
    STRONG_PASSWORD,
    Account,
    CreateUser,
    Register,
    assert_problem,
    bearer,
    refresh,
    unique_email,
)

ME = "/api/v1/users/me"


@pytest.fixture(scope="module")
def signing_key(signing_key_file: Path) -> SigningKey:
    """The key the runtime under test signs with."""
    return load_signing_key(signing_key_file)


@pytest.fixture(scope="module")
def unknown_key() -> Ed25519PrivateKey:
    """An Ed25519 key the runtime has never heard of."""
    return Ed25519PrivateKey.generate()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims_of(account: Account, **changes: Any) -> dict[str, Any]:
    """The account's real claims, fresh timestamps, with `changes` (None removes a claim)."""
    now = int(time.time())
    claims = {**account.claims, "iat": now, "nbf": now, "exp": now + 300}
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign(
    claims: dict[str, Any], key: Ed25519PrivateKey, *, kid: str, typ: str | None = "at+jwt"
) -> str:
    """An EdDSA JWT; `typ=None` leaves the header without a `typ`."""
    headers: dict[str, Any] = {"kid": kid, "typ": typ}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """`alg: none`: a header, the claims and an empty signature."""
    header = {"alg": "none", "typ": "at+jwt", "kid": kid}
    return f"{b64url_json(header)}.{b64url_json(claims)}."


def hmac_with_public_key(claims: dict[str, Any], key: SigningKey) -> str:
    """HS256 keyed with the public key's PEM bytes: the classic algorithm confusion.

    Built by hand because PyJWT itself refuses to use a PEM key as an HMAC secret.
    """
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.key_id}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    secret = public_pem(key.verification)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """The token with its payload edited and its original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url_json(claims)}.{signature}"


Forge = Callable[[Account, SigningKey, Ed25519PrivateKey], str]

FORGERIES: dict[str, Forge] = {
    "alg-none": lambda a, k, u: unsigned(claims_of(a), k.key_id),
    "hs256-with-public-key": lambda a, k, u: hmac_with_public_key(claims_of(a), k),
    "expired": lambda a, k, u: sign(
        claims_of(
            a, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600
        ),
        k.private_key,
        kid=k.key_id,
    ),
    "nbf-in-the-future": lambda a, k, u: sign(
        claims_of(a, nbf=int(time.time()) + 600, exp=int(time.time()) + 900),
        k.private_key,
        kid=k.key_id,
    ),
    "wrong-aud": lambda a, k, u: sign(claims_of(a, aud="other"), k.private_key, kid=k.key_id),
    "wrong-iss": lambda a, k, u: sign(claims_of(a, iss="evil"), k.private_key, kid=k.key_id),
    "no-aud": lambda a, k, u: sign(claims_of(a, aud=None), k.private_key, kid=k.key_id),
    "no-exp": lambda a, k, u: sign(claims_of(a, exp=None), k.private_key, kid=k.key_id),
    "no-sid": lambda a, k, u: sign(claims_of(a, sid=None), k.private_key, kid=k.key_id),
    "unknown-role": lambda a, k, u: sign(claims_of(a, role="root"), k.private_key, kid=k.key_id),
    "refresh-token-as-access": lambda a, k, u: a.refresh_token,
    "tampered-payload": lambda a, k, u: tampered(a.access_token, exp=2**31),
    "tampered-role": lambda a, k, u: tampered(a.access_token, role="manager"),
    "unknown-kid": lambda a, k, u: sign(claims_of(a), k.private_key, kid="no-such-key"),
    "unknown-key-own-kid": lambda a, k, u: sign(claims_of(a), u, kid=thumbprint(u.public_key())),
    "unknown-key-real-kid": lambda a, k, u: sign(claims_of(a), u, kid=k.key_id),
    "no-typ": lambda a, k, u: sign(claims_of(a), k.private_key, kid=k.key_id, typ=None),
    "typ-jwt": lambda a, k, u: sign(claims_of(a), k.private_key, kid=k.key_id, typ="JWT"),
    "garbage": lambda a, k, u: "not.a.jwt",
}


async def technician_of(register: Register, create_user: CreateUser) -> Account:
    admin = await register()
    return await create_user(admin, "technician")


async def test_a_crafted_token_with_nothing_wrong_is_accepted(
    client: httpx.AsyncClient,
    register: Register,
    create_user: CreateUser,
    signing_key: SigningKey,
) -> None:
    """The control: the crafting helpers themselves produce tokens the api accepts."""
    technician = await technician_of(register, create_user)
    token = sign(claims_of(technician), signing_key.private_key, kid=signing_key.key_id)
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["email"] == technician.email


@pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
async def test_forged_or_wrong_tokens_answer_401(
    client: httpx.AsyncClient,
    register: Register,
    signing_key: SigningKey,
    unknown_key: Ed25519PrivateKey,
    forgery: str,
) -> None:
    admin = await register()
    token = FORGERIES[forgery](admin, signing_key, unknown_key)
    response = await client.get(ME, headers=bearer(token))
    body = assert_problem(response, 401)
    assert (body["type"], body["title"]) == ("urn:fieldsync:problem:unauthorized", "Unauthorized")
    assert body["instance"] == ME
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'  # RFC 6750
    assert_problem(await client.get("/api/v1/users", headers=bearer(token)), 401)
    # The genuine token of the same account still works: only the forgery was refused.
    assert (await client.get(ME, headers=admin.auth)).status_code == 200


async def test_a_technician_cannot_tamper_their_way_to_admin(
    client: httpx.AsyncClient, register: Register, create_user: CreateUser
) -> None:
    technician = await technician_of(register, create_user)
    forged = tampered(technician.access_token, role="admin")
    assert_problem(await client.get("/api/v1/users", headers=bearer(forged)), 401)
    assert_problem(await client.get("/api/v1/users", headers=technician.auth), 403)


async def test_missing_or_malformed_authorization_answers_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await client.get(ME, headers=headers)
        body = assert_problem(response, 401)
        assert body["detail"] == "a bearer access token is required"
        # No token at all: the challenge names the scheme and no error (RFC 6750, 3.1).
        assert response.headers["www-authenticate"] == "Bearer"


async def test_after_logout_the_sessions_refresh_token_is_refused(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    rotated = await refresh(client, admin.refresh_token)
    assert rotated.status_code == 200, rotated.text
    pair = rotated.json()
    out = await client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert out.status_code == 204, out.text
    assert_problem(await refresh(client, pair["refresh_token"]), 401)
    assert_problem(await refresh(client, admin.refresh_token), 401)


async def test_oauth2_form_endpoint_returns_tokens(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    response = await client.post(
        "/api/v1/auth/token", data={"username": admin.email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    pair = response.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] > 0
    me = await client.get(ME, headers=bearer(pair["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == admin.email
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_oauth2_form_endpoint_rejects_a_username_that_is_not_an_email(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": "not-an-email", "password": STRONG_PASSWORD}
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["body", "username"]


async def test_oauth2_form_endpoint_refuses_wrong_credentials(
    client: httpx.AsyncClient, register: Register
) -> None:
    admin = await register()
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": admin.email, "password": "wrong password 123"}
    )
    unknown = await client.post(
        "/api/v1/auth/token", data={"username": unique_email(), "password": STRONG_PASSWORD}
    )
    assert_problem(wrong, 401)
    assert_problem(unknown, 401)
    assert wrong.json()["detail"] == unknown.json()["detail"]
