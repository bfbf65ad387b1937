"""Password policy and argon2id hashing (pwdlib over argon2-cffi).

Hashing runs in a worker thread: argon2 releases the GIL, so logins hash in
parallel and the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from fieldsync.kit.errors import ValidationFailed

MIN_LENGTH = 10
MAX_LENGTH = 128


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords bundled with zxcvbn."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str, *, field: str = "password", email: str | None = None) -> None:
    """Reject short, overlong, common or email-derived passwords with a 422 naming the field."""
    problem = None
    if len(password) < MIN_LENGTH:
        problem = f"must be at least {MIN_LENGTH} characters"
    elif len(password) > MAX_LENGTH:
        problem = f"must be at most {MAX_LENGTH} characters"
    elif password.lower() in common_passwords():
        problem = "is one of the most common passwords; choose another"
    elif email is not None and password.lower() in {email.lower(), email.split("@")[0].lower()}:
        problem = "must not be your email address"
    if problem is not None:
        raise ValidationFailed(
            f"{field} {problem}", errors=[{"loc": ["body", field], "msg": problem}]
        )


class PasswordHasher:
    """argon2id with configurable cost; old hashes are upgraded when the cost changes."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._hash = PasswordHash(
            (Argon2Hasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism),)
        )
        # Verified when the account does not exist, so unknown emails cost the same time.
        self._dummy = self._hash.hash("fieldsync-timing-equaliser")

    async def hash(self, password: str) -> str:
        """A new argon2id hash."""
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one used old parameters)."""
        if stored is None:
            await asyncio.to_thread(self._hash.verify, password, self._dummy)
            return False, None
        return await asyncio.to_thread(self._hash.verify_and_update, password, stored)
