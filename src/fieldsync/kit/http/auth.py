"""The caller of an HTTP request, from its bearer access token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from fieldsync.contracts.identity import Caller, Role
from fieldsync.kit.errors import Forbidden, Unauthorized, Unavailable
from fieldsync.kit.http.deps import runtime_of
from fieldsync.kit.ratelimit import parse_limits

# The docs page's Authorize button signs in through the api's OAuth2 password endpoint.
bearer_token = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'  # noqa: S105 - RFC 6750 challenge


async def current_caller(
    request: Request, token: Annotated[str | None, Depends(bearer_token)]
) -> Caller:
    """The verified caller; 401 without a valid token, 429 over the per-user limit."""
    if not token:
        raise Unauthorized("a bearer access token is required")
    runtime = runtime_of(request)
    if runtime.token_verifier is None:
        raise Unavailable("this process has no key to verify access tokens")
    try:
        caller = runtime.token_verifier.verify(token)
    except Unauthorized as exc:
        raise Unauthorized(exc.detail, challenge=INVALID_TOKEN_CHALLENGE) from None
    limits = parse_limits(runtime.settings.rate_limit_per_user)
    await runtime.rate_limiter.hit(limits, "user", str(caller.user_id))
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def require_role(*roles: Role) -> object:
    """A dependency that lets only `roles` through (403 for everyone else)."""

    async def check(caller: CurrentCaller) -> Caller:
        if not caller.has_role(*roles):
            raise Forbidden(f"requires the {' or '.join(role.value for role in roles)} role")
        return caller

    return Depends(check)


AdminCaller = Annotated[Caller, require_role(Role.ADMIN)]
