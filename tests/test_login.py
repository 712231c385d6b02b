"""Password sign-in never stalls the app and says nothing about which names exist (real hashes, real server)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import HTTPException
from gradio_client import Client

from prefapp.hosting.auth import HASH_ITERATIONS, Accounts, add_user
from prefapp.hosting.login import LoginGuard, LoginLimits
from prefapp.hosting.routes import launch_options
from prefapp.service import PrefService
from prefapp.ui.app import PrefUI
from tests.browser import served

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def accounts(tmp_path_factory) -> Accounts:
    path = tmp_path_factory.mktemp("login") / "users.toml"
    for name in ("ann", "bo", "boss"):
        add_user(path, name, "admin" if name == "boss" else "annotator", PASSWORD)
    return Accounts.from_toml(path.read_text())


def test_a_known_and_an_unknown_name_take_the_same_time(accounts: Accounts) -> None:
    guard = LoginGuard(accounts, LoginLimits(per_name=1000, per_address=1000, failure_delay_s=0.0))
    assert accounts.users["ann"].password_hash.split("$")[1] == str(HASH_ITERATIONS)  # a real, slow hash

    async def timed(name: str) -> float:
        t = time.perf_counter()
        assert await guard.check(name, "wrong password") is False
        return time.perf_counter() - t

    async def measure() -> tuple[list[float], list[float]]:
        known, unknown = [], []
        for i in range(6):  # interleaved, so machine load hits both alike
            known.append(await timed("ann"))
            unknown.append(await timed(f"nobody{i}"))
        return known, unknown

    known, unknown = asyncio.run(measure())
    k, u = statistics.median(known), statistics.median(unknown)
    print(f"wrong password: known name median {k * 1e3:.0f} ms, unknown name {u * 1e3:.0f} ms")
    assert k > 0.05 and u > 0.05  # both ran the full PBKDF2 hash
    assert abs(k - u) / max(k, u) < 0.25


def test_failures_are_limited_per_name_and_per_address_without_hashing(accounts: Accounts) -> None:
    guard = LoginGuard(accounts, LoginLimits(per_name=3, per_address=5, failure_delay_s=0.0))

    async def run() -> None:
        for _ in range(3):
            assert await guard.check("ann", "wrong") is False
        for name in ("ann", "ghost"):  # an unknown name is limited exactly like a known one
            if name == "ghost":
                for _ in range(2):
                    assert await guard.check(name, "wrong") is False  # address: 5 failures now
            t = time.perf_counter()
            with pytest.raises(HTTPException) as refused:
                await guard.check(name, PASSWORD)  # even the right password: the limit comes first
            assert time.perf_counter() - t < 0.05  # refused before any hashing
            assert refused.value.status_code == 429 and "try again in" in refused.value.detail

    asyncio.run(run())


@pytest.fixture
def app(service: PrefService, accounts: Accounts) -> Iterator[str]:
    with served(PrefUI(service, accounts).blocks, **launch_options(accounts)) as url:
        yield url


def vote_latencies(client: Client, name: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        pair_id, *_ = client.predict(name, api_name="/next_pair")
        assert client.predict(pair_id, "A", name, api_name="/vote").startswith("Recorded")
        out.append(time.perf_counter() - t)
    return out


def attack(url: str, name: str, stop: threading.Event, answers: list[int]) -> None:
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            answers.append(http.post(f"{url}login", data={"username": name, "password": "guess"}).status_code)


def test_wrong_password_loops_do_not_slow_the_annotators(app: str) -> None:
    annotators = [Client(app, auth=(name, PASSWORD), verbose=False) for name in ("ann", "bo")]
    vote_latencies(annotators[0], "ann", 3)  # warm up
    quiet = [s for c, n in zip(annotators, ("ann", "bo")) for s in vote_latencies(c, n, 10)]

    stop, answers = threading.Event(), []
    attackers = [threading.Thread(target=attack, args=(app, name, stop, answers)) for name in
                 ("ann", "boss", "nobody", "ann")]  # a known name twice, an admin, an unknown name
    for t in attackers:
        t.start()
    try:
        time.sleep(1)
        loud = [s for c, n in zip(annotators, ("ann", "bo")) for s in vote_latencies(c, n, 10)]
    finally:
        stop.set()
        for t in attackers:
            t.join(timeout=60)
    q, a = statistics.median(quiet), statistics.median(loud)
    print(f"next_pair + vote p50: quiet {q * 1e3:.0f} ms, under 4 wrong-password loops {a * 1e3:.0f} ms; "
          f"login answers {sorted(set(answers))}, {len(answers)} tries")
    assert set(answers) <= {400, 429} and 429 in answers  # wrong, then refused by the limit
    assert a <= 2 * q
    # a signed-in annotator is unaffected by the lock-out of its own name; a new sign-in waits for the window
    assert vote_latencies(annotators[0], "ann", 1)
