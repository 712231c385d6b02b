"""Load: N concurrent annotators voting through gradio_client against a real `prefapp serve` process.

    OMP_NUM_THREADS=1 .venv/bin/python bench/load.py --annotators 20 --votes 10

The app runs as a subprocess with accounts on (one annotator account each, so the recorded annotator is the
signed-in user). Phase 1: each annotator fetches its pairs (/next_pair: the model generates). Phase 2: all
annotators vote as fast as they can; every vote is sent twice at once (a double click) and then once more (a
retry after a lost answer); a send whose answer is lost on the client side is retried until the app answers.
Afterwards the app is stopped and DuckDB is read directly: every vote the app confirmed must be there exactly
once, no other vote, none answered "Recorded" twice. Prints votes/s and vote latency percentiles (p50, p95, max),
with the pair fetches' figures beside them for scale. Exit status 1 when the exactly-once check fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable as a plain script from anywhere

import httpx  # noqa: E402
from gradio_client import Client  # noqa: E402

from prefapp.hosting.auth import add_user  # noqa: E402
from prefapp.store import Store  # noqa: E402

PASSWORD = "load-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(workdir: Path, users_file: Path | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFAPP_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    cmd = [sys.executable, "-m", "prefapp.cli", "serve", "--model", "demo", "--data-dir", str(workdir / "data"),
           "--port", str(port)] + (["--users-file", str(users_file)] if users_file else [])
    log = (workdir / "app.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        if proc.poll() is not None:
            sys.exit("the app exited:\n" + (workdir / "app.log").read_text()[-3000:])
        try:
            httpx.get(url, timeout=2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    sys.exit("the app did not start in 120 s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Annotator:
    def __init__(self, url: str, name: str, auth: bool) -> None:
        self.name = name
        self.claimed = "someone-else" if auth else name  # with accounts the server must ignore this and use `name`
        self.client = Client(url, auth=(name, PASSWORD) if auth else None, verbose=False)
        self.pairs: list[str] = []
        self.fetch_s: list[float] = []
        self.vote_s: list[float] = []
        self.recorded: dict[str, int] = {}  # pair id -> answers saying "Recorded" (must be at most 1)
        self.repeats_ok = 0  # repeated sends answered "Already recorded"
        self.sends = 0  # vote sends that got an answer
        self.client_errors = 0  # sends whose answer was lost on the way (the vote may still be stored)

    def fetch(self, n: int) -> None:
        while len(self.pairs) < n:
            t = time.perf_counter()
            try:
                pair_id, *_ = self.client.predict(self.claimed, api_name="/next_pair")
            except Exception:  # a dropped answer: ask again (the orphaned pair is simply never voted on)
                self.client_errors += 1
                continue
            self.fetch_s.append(time.perf_counter() - t)
            self.pairs.append(pair_id)

    def send(self, jobs: list) -> list[str]:
        """The answers that came back; a send whose answer was lost (client or network error) is counted."""
        answers = []
        for job in jobs:
            try:
                answers.append(job.result())
            except Exception:
                self.client_errors += 1
        return answers

    def vote_all(self, choices: str = "AB") -> None:
        for i, pair_id in enumerate(self.pairs):
            choice = choices[i % len(choices)]
            submit = lambda: self.client.submit(pair_id, choice, self.claimed, api_name="/vote")  # noqa: E731
            t = time.perf_counter()
            answers = self.send([submit(), submit()])  # a double click
            self.vote_s.append(time.perf_counter() - t)
            answers += self.send([submit()])  # a retry, as after a lost answer
            while not answers:  # every answer lost: retry until the app confirms
                answers += self.send([submit()])
            self.recorded[pair_id] = sum(a.startswith("Recorded") for a in answers)
            self.repeats_ok += sum(a.startswith("Already recorded") for a in answers)
            self.sends += len(answers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--votes", type=int, default=10, help="votes per annotator")
    parser.add_argument("--no-auth", action="store_true", help="run the app open (annotator names from the client)")
    args = parser.parse_args()
    names = [f"annotator{i:02d}" for i in range(args.annotators)]
    with tempfile.TemporaryDirectory(prefix="prefapp-load-") as tmp:
        workdir = Path(tmp)
        users_file = None
        if not args.no_auth:
            users_file = workdir / "users.toml"
            for name in names:
                add_user(users_file, name, "annotator", PASSWORD)
        proc, url = start_app(workdir, users_file)
        try:
            t0 = time.perf_counter()  # sign in one after another: PBKDF2 is slow on purpose, and not what we measure
            annotators = [Annotator(url, n, users_file is not None) for n in names]
            login_wall = time.perf_counter() - t0
            with ThreadPoolExecutor(args.annotators) as pool:
                t0 = time.perf_counter()
                list(pool.map(lambda a: a.fetch(args.votes), annotators))
                fetch_wall = time.perf_counter() - t0
                barrier_start = time.perf_counter()
                list(pool.map(lambda a: a.vote_all(), annotators))
                vote_wall = time.perf_counter() - barrier_start
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with Store(workdir / "data" / "prefapp.duckdb") as store:
            stored = [(v.pair_id, v.annotator) for v in store.votes()]

    confirmed = sorted((p, a.name) for a in annotators for p in a.recorded)  # the app said it is stored
    double = sum(n > 1 for a in annotators for n in a.recorded.values())  # recorded twice: must be 0
    sent = args.annotators * args.votes
    fetch_s = [s for a in annotators for s in a.fetch_s]
    vote_s = [s for a in annotators for s in a.vote_s]
    errors = sum(a.client_errors for a in annotators)
    answered = sum(a.sends for a in annotators)
    repeats = sum(a.repeats_ok for a in annotators)
    exactly_once = (confirmed == sorted(stored) and len(set(stored)) == len(stored) and len(confirmed) == sent
                    and double == 0 and repeats + sum(n for a in annotators for n in a.recorded.values()) == answered)
    print(f"load: {args.annotators} annotators x {args.votes} votes, auth {'off' if args.no_auth else 'on'}, "
          f"demo model, {os.cpu_count()} CPU cores; {args.annotators} clients connected in {login_wall:.1f} s")
    print(f"{'phase':<26}{'ops':>6}{'ops/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, samples, wall in (("next_pair (generates)", fetch_s, fetch_wall),
                                 ("vote (2 sends at once)", vote_s, vote_wall)):
        print(f"{label:<26}{len(samples):>6}{len(samples) / wall:>9.1f}{statistics.median(samples) * 1e3:>9.0f}"
              f"{percentile(samples, 0.95) * 1e3:>9.0f}{max(samples) * 1e3:>9.0f}")
    print(f"votes confirmed {len(confirmed)}/{sent}; in DuckDB {len(stored)} rows, {len(set(stored))} distinct; "
          f"recorded twice: {double}; {repeats} repeated sends answered 'Already recorded' ({answered} answers); "
          f"answers lost on the client side (then retried): {errors}; "
          f"recorded annotators are the signed-in users: {sorted({a for _, a in stored}) == sorted(names)}")
    print("exactly once:", "PASS" if exactly_once else "FAIL")
    return 0 if exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
