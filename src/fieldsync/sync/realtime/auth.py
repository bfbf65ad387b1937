"""The caller of a realtime connection.

Browsers cannot set headers on EventSource or WebSocket connections, so besides the
`Authorization: Bearer` header the token may come as the `access_token` query
parameter (RFC 6750 §2.3). Access tokens are short-lived; a connection outliving its
token stays open (it carries only pokes) and the client reconnects with a new one.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from fieldsync.contracts.identity import Caller
from fieldsync.kit.errors import Unauthorized, Unavailable
from fieldsync.kit.http.auth import INVALID_TOKEN_CHALLENGE
from fieldsync.kit.runtime import Runtime

MAX_TOKEN_LENGTH = 4096


def token_of(connection: HTTPConnection) -> str | None:
    """The bearer token of a request or WebSocket handshake, if it has one."""
    header = connection.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return connection.query_params.get("access_token") or None


def realtime_caller(runtime: Runtime, connection: HTTPConnection) -> Caller:
    """The verified caller; Unauthorized without a valid token."""
    token = token_of(connection)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("a bearer access token is required")
    if runtime.token_verifier is None:
        raise Unavailable("this process has no key to verify access tokens")
    try:
        return runtime.token_verifier.verify(token)
    except Unauthorized as exc:
        raise Unauthorized(exc.detail, challenge=INVALID_TOKEN_CHALLENGE) from None
