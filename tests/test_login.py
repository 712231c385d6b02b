"""Password sign-in never stalls the app and says nothing about which names exist (real hashes, real server)."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import HTTPException
from gradio_client import Client

from prefapp.errors import ConfigError
from prefapp.hosting.auth import HASH_ITERATIONS, Accounts, add_user
from prefapp.hosting.callers import TRUSTED_PROXIES_ENV, UVICORN_PROXIES_ENV, TrustedProxies
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


# --- the client address behind a proxy (prefapp.hosting.callers) --------------------------------------------------

def test_forwarded_for_is_read_only_from_a_trusted_proxy_and_from_the_right(monkeypatch) -> None:
    for name in ("SPACE_ID", TRUSTED_PROXIES_ENV):
        monkeypatch.delenv(name, raising=False)
    untrusted = TrustedProxies.from_env()
    assert untrusted.client("203.0.113.9", ["1.2.3.4"]) == "203.0.113.9"  # a client's own claim: ignored

    monkeypatch.setenv(TRUSTED_PROXIES_ENV, "127.0.0.1, 10.0.0.0/8")
    proxies = TrustedProxies.from_env()
    assert proxies.client("203.0.113.9", ["1.2.3.4"]) == "203.0.113.9"  # the peer is no proxy of ours
    assert proxies.client("127.0.0.1", ["198.51.100.7"]) == "198.51.100.7"
    # the client wrote the left part; our proxies appended the rest: the right-most untrusted hop is the client
    assert proxies.client("127.0.0.1", ["6.6.6.6, 198.51.100.7, 10.1.2.3"]) == "198.51.100.7"
    assert proxies.client("127.0.0.1", ["6.6.6.6", "198.51.100.7"]) == "198.51.100.7"  # two header lines
    assert proxies.client("127.0.0.1", ["10.0.0.2, 10.0.0.3"]) == "10.0.0.2"  # all ours: the first
    assert proxies.client("127.0.0.1", ["6.6.6.6, not-an-ip"]) == "127.0.0.1"  # garbage: believe none of it
    assert proxies.client("127.0.0.1", []) == "127.0.0.1"

    monkeypatch.delenv(TRUSTED_PROXIES_ENV)
    monkeypatch.setenv("SPACE_ID", "team/prefapp")  # on a Space the peer is the Space's proxy, whatever its address
    space = TrustedProxies.from_env()
    assert space.client("34.1.2.3", ["6.6.6.6, 198.51.100.7, 10.20.0.5"]) == "198.51.100.7"
    assert space.client("34.1.2.3", []) == "34.1.2.3"

    monkeypatch.setenv(TRUSTED_PROXIES_ENV, "10.0.0.5, proxy.example")
    with pytest.raises(ConfigError, match="'proxy.example' is not an IP address or network: list the proxies"):
        TrustedProxies.from_env()


def failed_sign_ins(url: str, forwarded_for: list[str]) -> list[int]:
    """One wrong password per address claimed in X-Forwarded-For, each from a new name (so only the address counts)."""
    with httpx.Client(timeout=60) as http:
        return [http.post(f"{url}login", data={"username": f"guess{i}", "password": "wrong"},
                          headers={"X-Forwarded-For": address}).status_code
                for i, address in enumerate(forwarded_for)]


@pytest.mark.parametrize("trust", [True, False])
def test_the_per_address_limit_counts_clients_behind_a_trusted_proxy_only(
        service: PrefService, accounts: Accounts, monkeypatch, trust: bool) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv(TRUSTED_PROXIES_ENV, "127.0.0.1") if trust else monkeypatch.delenv(TRUSTED_PROXIES_ENV, False)
    monkeypatch.setenv(UVICORN_PROXIES_ENV, "restored after the test")
    monkeypatch.delenv(UVICORN_PROXIES_ENV)  # as on a fresh machine: uvicorn would believe 127.0.0.1 on its own
    options = launch_options(accounts)  # the Doorman as `prefapp serve` builds it, with the env's trusted proxies
    assert os.environ[UVICORN_PROXIES_ENV] == ""  # ... so launch_options tells it to believe nobody
    guard = LoginGuard(accounts, LoginLimits(per_name=1000, per_address=3, failure_delay_s=0.0))
    options["auth"] = guard.check  # a small per-address limit, so the test needs few (slow, real) hashes
    with served(PrefUI(service, accounts).blocks, **options) as url:
        first = failed_sign_ins(url, ["198.51.100.1"] * 3 + ["198.51.100.1"])
        other = failed_sign_ins(url, ["198.51.100.2"])  # another client behind the same proxy
        forged = failed_sign_ins(url, ["6.6.6.6, 198.51.100.1"])  # a client prepending a made-up address
    assert first[:3] == [400, 400, 400] and first[3] == 429  # the limit holds for one forwarded client
    if trust:
        assert other == [400]  # ... and does not lock out the others behind the proxy
        assert forged == [429]  # the hop our proxy wrote counts, not what the client wrote before it
    else:
        assert other == [429] and forged == [429]  # the header is the client's claim: the peer is what counts
