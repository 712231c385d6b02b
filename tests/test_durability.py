"""Durability of the real app process: `kill -9` while annotators vote and a round trains loses nothing acknowledged.

The app runs as a subprocess (`prefapp serve`), annotators vote through `gradio_client` from threads, a first round
trains to the end, a second is killed mid-run together with the votes in flight. After a restart of the app the
store opens, every acknowledged vote is there exactly once, the finished round is intact and the killed one is
marked interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from gradio_client import Client

from prefapp.store.store import INTERRUPTED_ERROR, Store
from tests.browser import free_port

ANNOTATORS = ("ann", "bob", "cy")
SHORT_ROUND = dict(beta=0.1, learning_rate=1e-3, num_epochs=1, batch_size=4, max_length=128, lora_r=4,
                   loss_type="sigmoid")
LONG_ROUND = {**SHORT_ROUND, "num_epochs": 100}  # runs far longer than the test waits


def start_app(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    env = {k: v for k, v in env.items() if not k.startswith("PREFAPP_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefapp.cli", "serve", "--model", "demo", "--data-dir", str(data_dir),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("the app did not start within 120 s:\n" + log_path.read_text()[-3000:])


def label(client: Client, annotator: str, acked: list[tuple[str, str]], stop: threading.Event) -> None:
    """Vote as fast as possible; a vote counts as acknowledged only once the app answered 'Recorded'."""
    while not stop.is_set():
        try:
            pair_id, *_ = client.predict(annotator, api_name="/next_pair")
            message = client.predict(pair_id, "A", annotator, api_name="/vote")
        except Exception:  # the app was killed: whatever was not acknowledged may be lost
            return
        if message.startswith("Recorded"):
            acked.append((pair_id, annotator))


def test_kill_9_during_votes_and_training_loses_nothing_acknowledged(tmp_path) -> None:
    data_dir, log_path = tmp_path / "data", tmp_path / "app.log"
    proc, url = start_app(data_dir, log_path)
    acked: list[tuple[str, str]] = []
    stop = threading.Event()
    try:
        clients = [Client(url, verbose=False) for _ in ANNOTATORS]
        for client, name in zip(clients, ANNOTATORS):  # enough A votes for a short first round
            for _ in range(3):
                pair_id, *_ = client.predict(name, api_name="/next_pair")
                assert client.predict(pair_id, "A", name, api_name="/vote").startswith("Recorded")
                acked.append((pair_id, name))
        admin = Client(url, verbose=False)
        assert admin.predict(**SHORT_ROUND, api_name="/train").startswith("Round 1 started")
        while admin.predict(api_name="/train_status")["running"]:
            time.sleep(0.5)
        assert admin.predict(api_name="/train_status")["state"] == "finished"

        threads = [threading.Thread(target=label, args=(c, n, acked, stop)) for c, n in zip(clients, ANNOTATORS)]
        for t in threads:
            t.start()
        time.sleep(2)
        assert admin.predict(**LONG_ROUND, api_name="/train").startswith("Round 2 started")
        while admin.predict(api_name="/train_status").get("step", 0) < 1:  # killed inside the training loop
            time.sleep(0.2)
        time.sleep(1)
        votes_before_kill = len(acked)
        os.killpg(proc.pid, signal.SIGKILL)  # the app and anything it started, no chance to clean up
        proc.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert votes_before_kill > 9, "votes should have been flowing while the app was killed"
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    proc, url = start_app(data_dir, log_path)  # the restart opens the same file cleanly
    try:
        client = Client(url, verbose=False)
        pair_id, *_ = client.predict("after", api_name="/next_pair")
        assert client.predict(pair_id, "B", "after", api_name="/vote").startswith("Recorded")
        acked.append((pair_id, "after"))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    with Store(data_dir / "prefapp.duckdb") as store:
        stored = [(v.pair_id, v.annotator) for v in store.votes()]
        rounds = {r.id: r for r in store.rounds()}
    assert len(stored) == len(set(stored))  # no duplicates
    assert set(acked) <= set(stored)  # every acknowledged vote survived
    assert rounds[1].status == "finished" and Path(rounds[1].adapter_path).is_dir()
    assert rounds[1].metrics and "loss" in rounds[1].metrics
    assert rounds[2].status == "failed" and rounds[2].error == INTERRUPTED_ERROR
    print(f"acknowledged {len(acked)} votes, {len(stored)} stored; kill -9 during round 2 and live voting")


def test_sigterm_closes_the_store_so_the_duckdb_file_alone_holds_every_vote(tmp_path) -> None:
    data_dir, log_path = tmp_path / "data", tmp_path / "app.log"
    proc, url = start_app(data_dir, log_path)
    acked = []
    try:
        client = Client(url, verbose=False)
        for i in range(12):
            pair_id, *_ = client.predict("ann", api_name="/next_pair")
            assert client.predict(pair_id, "AB"[i % 2], "ann", api_name="/vote").startswith("Recorded")
            acked.append(pair_id)
        proc.send_signal(signal.SIGTERM)  # what Docker, systemd and a Space restart send
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (data_dir / "prefapp.duckdb.wal").exists(), log_path.read_text()[-3000:]
    alone = tmp_path / "alone" / "prefapp.duckdb"
    alone.parent.mkdir()
    alone.write_bytes((data_dir / "prefapp.duckdb").read_bytes())  # the file alone, no log, no marks
    with Store(alone) as store:
        assert sorted(v.pair_id for v in store.votes()) == sorted(acked)
        assert store.last_clean_shutdown()["votes"] == 12
