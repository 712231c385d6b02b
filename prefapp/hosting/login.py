"""Password sign-in that never stalls the app and tells an attacker nothing.

gradio awaits an `async` auth callable on its event loop and calls a plain one right there, blocking every other
request for the length of a PBKDF2 hash (~0.3 s per try). `LoginGuard.check` is async: the hash runs in a worker
thread (hashlib releases the GIL), at most `hashes_at_once` at a time so sign-ins can never take more than that
many cores from the annotators. Failed tries are counted per user name and per client address; past the limit a
try is refused with 429 before any hashing. An unknown name is hashed against a dummy hash with the same
iterations, and every failure waits the same `failure_delay_s`, so a known and an unknown name take the same time
and the name cannot be guessed from the answer.

The client address comes from `CLIENT_ADDRESS`, which `prefapp.hosting.routes.Doorman` sets for each request
(`prefapp.hosting.callers.client_address`: behind a trusted proxy, the client it forwards for).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections import deque
from dataclasses import dataclass

from prefapp.hosting.auth import HASH_ITERATIONS, HASH_SCHEME, Accounts, verify_password

log = logging.getLogger(__name__)

CLIENT_ADDRESS: contextvars.ContextVar[str] = contextvars.ContextVar("prefapp_client_address", default="unknown")
# Same scheme, iterations and salt length as a real entry: checking against it costs what a real check costs.
DUMMY_HASH = f"{HASH_SCHEME}${HASH_ITERATIONS}${'00' * 16}${'00' * 32}"


class TooManyTries(Exception):
    """Sign-in refused before hashing: too many failed tries for this name or from this address."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"Too many failed sign-ins: try again in {retry_after_s} s.")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class LoginLimits:
    per_name: int = 5  # failed tries for one user name per window (a person mistypes a few times, not 5)
    per_address: int = 20  # failed tries from one address per window (an office behind one NAT: a few people)
    window_s: float = 300.0  # how far back failures count
    failure_delay_s: float = 1.0  # every failure answers after this long: a sequential guesser gets 1 try/s
    hashes_at_once: int = 1  # PBKDF2 runs in threads, never on more than this many cores at once


class FailureLog:
    """Timestamps of recent failures per key; a key with `limit` failures in the window is blocked."""

    MAX_KEYS = 50_000  # random names must not grow memory without bound

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: it may now)."""
        times = self._recent(key, now)
        return 0.0 if len(times) < self.limit else times[0] + self.window_s - now

    def add(self, key: str, now: float) -> None:
        if len(self._failures) >= self.MAX_KEYS:
            self._prune(now)
        self._failures.setdefault(key, deque()).append(now)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def _prune(self, now: float) -> None:
        for key in [k for k, times in self._failures.items() if not self._recent(k, now)]:
            del self._failures[key]
        while len(self._failures) >= self.MAX_KEYS:  # still full of live keys: forget the oldest
            self._failures.pop(next(iter(self._failures)))


class LoginGuard:
    """gradio's `auth` callable for accounts: `launch(auth=LoginGuard(accounts).check)`."""

    def __init__(self, accounts: Accounts, limits: LoginLimits = LoginLimits()) -> None:
        self.accounts, self.limits = accounts, limits
        self._by_name = FailureLog(limits.per_name, limits.window_s)
        self._by_address = FailureLog(limits.per_address, limits.window_s)
        self._hashing: asyncio.Semaphore | None = None  # made on the server's loop at the first sign-in

    async def check(self, username: str, password: str) -> bool:
        """True when the name exists and the password matches; raises TooManyTries (HTTP 429) past the limits."""
        name, address = (username or "").strip()[:64], CLIENT_ADDRESS.get()
        await self._refuse_if_limited(name, address)
        if self._hashing is None:
            self._hashing = asyncio.Semaphore(self.limits.hashes_at_once)
        async with self._hashing:
            await self._refuse_if_limited(name, address)  # others may have failed while this one waited
            user = self.accounts.users.get(name)
            stored = user.password_hash if user is not None else DUMMY_HASH
            ok = await asyncio.to_thread(verify_password, password or "", stored)
        if ok and user is not None:
            return True
        now = time.monotonic()
        self._by_name.add(name, now)
        self._by_address.add(address, now)
        log.warning("failed sign-in for %r from %s", name, address)
        await asyncio.sleep(self.limits.failure_delay_s)
        return False

    async def _refuse_if_limited(self, name: str, address: str) -> None:
        now = time.monotonic()
        wait = max(self._by_name.retry_after(name, now), self._by_address.retry_after(address, now))
        if wait > 0:
            await asyncio.sleep(self.limits.failure_delay_s)  # a refusal is no faster than a failure
            raise too_many_tries(math.ceil(wait))


def too_many_tries(retry_after_s: int) -> Exception:
    """An HTTP 429 for gradio's login route (FastAPI turns it into the response), naming when to try again."""
    try:
        from fastapi import HTTPException
    except ImportError:  # pragma: no cover - fastapi comes with gradio
        return TooManyTries(retry_after_s)
    return HTTPException(status_code=429, detail=str(TooManyTries(retry_after_s)),
                         headers={"Retry-After": str(retry_after_s)})
