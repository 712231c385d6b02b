"""Capacity: how many votes/s one `prefapp serve` process sustains, with light asyncio clients over the HTTP API.

    OMP_NUM_THREADS=1 .venv/bin/python bench/load.py --annotators 10 50 200 --votes 60 --fetch 1
    OMP_NUM_THREADS=1 .venv/bin/python bench/load.py --annotators 10 50 200 --votes 60 --fetch 1 --rate 200

The app runs as a subprocess (open mode; `--auth` gives every annotator an account). Each annotator is one asyncio
task calling the app as any HTTP client would, through each of `--routes` in turn (both by default, side by side in
one run, on the same server): `gradio`, its queue API (POST /gradio_api/call/<endpoint> returns an event id, GET
/gradio_api/call/<endpoint>/<id> streams the result; httpx, signed in with gradio's cookie under `--auth`), and
`light`, the light labelling routes (one POST /api/v1/<endpoint>, JSON in and out, prefapp/hosting/light_api.py;
two keep-alive connections per annotator speaking plain HTTP/1.1 over asyncio streams, HTTP basic auth under
`--auth`), so the clients cost a fraction of a millisecond of CPU per vote and the figures are the server's.
Per route and annotator count (new annotators each time): phase 1 fetches `--fetch` pairs per annotator
(/next_pair; the model generates, so this measures generation, reported for scale); phase 2 votes on those and on
`--votes` pairs per annotator written into the DuckDB file before the app started (so generation speed does not cap
the votes), every 10th vote sent twice at once (a double click). By default every annotator votes as fast as the
app answers, one vote outstanding each (a closed loop: the most the server sustains, its latency mostly queueing);
with `--rate R` the annotators together offer R votes/s, each voting at its share (a vote's time then runs from when
it was due). Reported: votes/s sustained over phase 2, the p50/p95/max of one vote's round trip, and the CPU time the
app process and the clients spent per vote (what the votes cost, whatever else the machine runs). Afterwards the app
is stopped (SIGTERM: a clean stop) and DuckDB is read directly: every vote the app answered "Recorded" must be there
exactly once, and no other. Exit status 1 when that check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable as a plain script from anywhere

import httpx  # noqa: E402

from prefapp.hosting.auth import add_user  # noqa: E402
from prefapp.store import Store  # noqa: E402

PASSWORD = "load-test-password"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(workdir: Path, users_file: Path | None, cpus: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFAPP_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PREFAPP_BACKUP_KEEP="0")
    cmd = [sys.executable, "-m", "prefapp.cli", "serve", "--model", "demo", "--data-dir", str(workdir / "data"),
           "--port", str(port)] + (["--users-file", str(users_file)] if users_file else [])
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    log = (workdir / "app.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(480):
        if proc.poll() is not None:
            sys.exit("the app exited:\n" + (workdir / "app.log").read_text()[-3000:])
        try:
            httpx.get(url + "/gradio_api/startup-events", timeout=2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    sys.exit("the app did not start in 240 s")


def stop_app(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


LIGHT_PARAMS = {"next_pair": ("annotator",), "vote": ("pair_id", "choice", "annotator")}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


class CallError(Exception):
    pass


class LightConnection:
    """One keep-alive HTTP/1.1 connection speaking just what the light routes need (a POST of a JSON object, an
    answer with Content-Length), over asyncio streams: a client costs a fraction of a millisecond of CPU per call,
    so the clients measure the server, not themselves (httpx costs the clients 5-13 ms of CPU per vote here)."""

    def __init__(self, url: str, authorization: str | None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (f"Host: {parts.netloc}\r\nContent-Type: application/json\r\n"
                     + (f"Authorization: {authorization}\r\n" if authorization else ""))
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        body = json.dumps(payload).encode()
        try:
            if self.streams is not None and self.streams[0].at_eof():  # the server closed it while idle
                self.close()
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.streams
            writer.write(f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
            answer = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError) as exc:
            self.close()
            raise CallError(f"the connection failed: {exc!r}") from exc
        if "connection: close" in head:
            self.close()
        return int(head.split(" ", 2)[1]), answer

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def call(http: httpx.AsyncClient | LightConnection, endpoint: str, *args: object) -> list:
    """One call: through gradio's queue (join, then read the result stream to its end) or one light request."""
    if isinstance(http, LightConnection):
        status, answer = await http.post(f"/api/v1/{endpoint}", dict(zip(LIGHT_PARAMS[endpoint], args)))
        if status != 200:
            raise CallError(f"{status}: {answer.decode(errors='replace')}")
        body = json.loads(answer)
        return [body["pair_id"]] if endpoint == "next_pair" else [body["message"]]
    joined = await http.post(f"/gradio_api/call/{endpoint}", json={"data": list(args)})
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    async with http.stream("GET", f"/gradio_api/call/{endpoint}/{event_id}") as stream:
        event = None
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = line[5:].strip()
                if event == "error":
                    raise CallError(data)
                return json.loads(data)
    raise CallError(f"the stream for {endpoint} ended without a result")


@dataclass
class Annotator:
    name: str
    channels: list  # how its calls travel: gradio's queue API (one httpx client) or two light connections
    pairs: list[str] = field(default_factory=list)
    fetch_s: list[float] = field(default_factory=list)
    vote_s: list[float] = field(default_factory=list)
    recorded: dict[str, int] = field(default_factory=dict)  # pair id -> answers saying "Recorded" (at most 1)
    errors: int = 0  # sends whose answer was lost (a timeout): sent again, answered "Already recorded" if stored
    repeats: int = 0  # answers saying "Already recorded": a double click, or a retry after a lost answer

    async def fetch(self, n: int) -> None:
        fetched = 0
        while fetched < n:
            t = time.perf_counter()
            try:
                pair_id, *_ = await call(self.channels[0], "next_pair", self.name)
            except (httpx.HTTPError, CallError):
                self.errors += 1
                continue
            self.fetch_s.append(time.perf_counter() - t)
            self.pairs.append(pair_id)
            fetched += 1

    async def vote_all(self, interval: float | None = None) -> None:
        """Vote on every fetched pair: as fast as the app answers, or one vote each `interval` seconds (from a
        random start within the first interval). Paced, a vote's time runs from when it was due, so a slow answer
        that delays the next vote counts against the app, not for it."""
        due = time.perf_counter() + (random.random() * interval if interval else 0)
        for i, pair_id in enumerate(self.pairs):
            if interval:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sends = 2 if i % 10 == 0 else 1  # a double click now and then
            answers: list[str] = []
            start = min(due, time.perf_counter()) if interval else time.perf_counter()
            while not answers:  # an answer lost on the way: send again until the app confirms
                results = await asyncio.gather(*(call(self.channels[k], "vote", pair_id, "AB"[i % 2], self.name)
                                                 for k in range(sends)), return_exceptions=True)
                answers = [r[0] for r in results if isinstance(r, list)]
                self.errors += sum(not isinstance(r, list) for r in results)
            self.vote_s.append(time.perf_counter() - start)
            self.recorded[pair_id] = sum(a.startswith("Recorded") for a in answers)
            self.repeats += sum(a.startswith("Already recorded") for a in answers)
            due += interval or 0.0


async def sign_in(http: httpx.AsyncClient, name: str) -> None:
    answer = await http.post("/login", data={"username": name, "password": PASSWORD})
    answer.raise_for_status()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (the server's own cost, whatever the load)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def make_pairs(db: Path, names: list[str], votes: int) -> dict[str, list[str]]:
    """`votes` pairs per annotator written straight into the store before the app starts, so the vote phase measures
    the server and not the model's generation speed (phase 1 measures that)."""
    with Store(db) as store:
        store.add_prompts([f"Load prompt {i}: what is {i} + 1?" for i in range(len(names) * votes)], source="bench")
        prompts = store.least_served_prompts(len(names) * votes)
        made: dict[str, list[str]] = {name: [] for name in names}
        for i, prompt in enumerate(prompts):
            name = names[i % len(names)]
            pair = store.add_pair(prompt, f"{i} + 1 = {i + 1}.", f"{i + 1}, obviously.", swapped=bool(i % 2),
                                  model_id="prefapp-demo", adapter_id=None, sampling={}, served_to=name)
            made[name].append(pair.id)
    return made


async def run_level(url: str, route: str, names: list[str], pairs: dict[str, list[str]], fetch: int, auth: bool,
                    rate: float | None,
                    server_pid: int) -> dict:
    n = len(names)
    limits = httpx.Limits(max_connections=2 * n + 10, max_keepalive_connections=2 * n + 10)
    clients = [httpx.AsyncClient(base_url=url, timeout=300, limits=limits)
               for _ in range(n if auth else 1)] if route == "gradio" else []
    light: list[LightConnection] = []
    try:
        annotators = []
        for i, name in enumerate(names):
            if route == "gradio":
                http = clients[i if auth else 0]
                if auth:  # cookies per annotator; sign-ins are slow on purpose and not what is measured
                    await sign_in(http, name)
                channels: list = [http, http]
            else:  # HTTP basic auth: the app checks the password once, then remembers it (light_api)
                authorization = "Basic " + base64.b64encode(f"{name}:{PASSWORD}".encode()).decode() if auth else None
                channels = [LightConnection(url, authorization) for _ in range(2)]  # 2: a double click
                light += channels
            annotators.append(Annotator(name, channels, list(pairs[name])))
        t0 = time.perf_counter()
        await asyncio.gather(*(a.fetch(fetch) for a in annotators))
        fetch_wall = time.perf_counter() - t0
        await asyncio.sleep(5)  # the pair queue refills after the fetches: let it, then measure the app at rest
        idle0 = cpu_seconds(server_pid)
        await asyncio.sleep(3)
        idle_cpu_per_s = (cpu_seconds(server_pid) - idle0) / 3
        t0, server0, clients0 = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
        await asyncio.gather(*(a.vote_all(len(annotators) / rate if rate else None) for a in annotators))
        vote_wall = time.perf_counter() - t0
        server_cpu, client_cpu = cpu_seconds(server_pid) - server0, time.process_time() - clients0
    finally:
        for client in clients:
            await client.aclose()
        for connection in light:
            connection.close()
    vote_s = [s for a in annotators for s in a.vote_s]
    fetch_s = [s for a in annotators for s in a.fetch_s]
    return {"route": route, "annotators": n, "votes": len(vote_s), "votes_per_s": len(vote_s) / vote_wall,
            "p50_ms": statistics.median(vote_s) * 1e3, "p95_ms": percentile(vote_s, 0.95) * 1e3,
            "max_ms": max(vote_s) * 1e3, "fetch_per_s": len(fetch_s) / fetch_wall,
            "fetch_p50_ms": statistics.median(fetch_s) * 1e3, "fetch_p95_ms": percentile(fetch_s, 0.95) * 1e3,
            "errors": sum(a.errors for a in annotators),
            "server_cpu_ms": (server_cpu - idle_cpu_per_s * vote_wall) / max(1, len(vote_s)) * 1e3,
            "idle_cpu_pct": idle_cpu_per_s * 100, "client_cpu_ms": client_cpu / max(1, len(vote_s)) * 1e3,
            "confirmed": {(p, a.name) for a in annotators for p in a.recorded},  # answered Recorded or Already
            "twice": sum(k > 1 for a in annotators for k in a.recorded.values()),
            "recorded_answers": sum(k for a in annotators for k in a.recorded.values()),
            "repeats": sum(a.repeats for a in annotators)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--votes", type=int, default=20, help="votes per annotator at each level")
    parser.add_argument("--fetch", type=int, default=2, help="pairs each annotator fetches first (the model writes)")
    parser.add_argument("--rate", type=float, help="votes/s offered by all annotators together, each voting at its "
                                                   "share of it (default: each votes as fast as the app answers)")
    parser.add_argument("--auth", action="store_true", help="accounts on: each annotator signs in")
    parser.add_argument("--routes", nargs="+", choices=("gradio", "light"), default=["gradio", "light"],
                        help="how the clients call the app: gradio's queue API, the light routes, or both in turn")
    parser.add_argument("--server-cpus", help="pin the app to these CPUs (taskset list, e.g. 0); clients elsewhere")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefapp-load-") as tmp:
        workdir = Path(tmp)
        levels, offset = [], 0
        for n in args.annotators:  # new annotators at each level and route
            for route in args.routes:
                levels.append((route, [f"annotator{offset + i:04d}" for i in range(n)]))
                offset += n
        users_file = None
        if args.auth:
            users_file = workdir / "users.toml"
            for name in (name for _, names in levels for name in names):
                add_user(users_file, name, "annotator", PASSWORD)
        pairs = make_pairs(workdir / "data" / "prefapp.duckdb", [n for _, names in levels for n in names], args.votes)
        proc, url = start_app(workdir, users_file, args.server_cpus)
        results = []
        try:
            for route, names in levels:
                results.append(asyncio.run(run_level(url, route, names, pairs, args.fetch, args.auth, args.rate,
                                                      proc.pid)))
        finally:
            stop_app(proc)
        with Store(workdir / "data" / "prefapp.duckdb") as store:
            stored = [(v.pair_id, v.annotator) for v in store.votes()]

    confirmed = set().union(*(r["confirmed"] for r in results))
    exactly_once = (sorted(confirmed) == sorted(stored) and len(set(stored)) == len(stored)
                    and not any(r["twice"] for r in results))
    print(f"load: demo model, auth {'on' if args.auth else 'off'}, {os.cpu_count()} CPU cores"
          + (f", app pinned to CPUs {args.server_cpus}" if args.server_cpus else "")
          + f", load average after {os.getloadavg()[0]:.1f}; clients: asyncio (light: raw HTTP/1.1; gradio: httpx), "
          + (f"offering {args.rate:g} votes/s in all" if args.rate else "each voting as fast as the app answers")
          + "; app at "
          f"rest: {', '.join(format(r['idle_cpu_pct'], '.0f') + '%' for r in results)} of a core (subtracted from its "
          "CPU/vote)")
    print(f"{'route':>7}{'annotators':>11}{'votes':>7}{'votes/s':>9}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}"
          f"{'pairs/s':>9}{'pair p50':>9}{'pair p95':>9}{'errors':>7}{'app CPU ms/vote':>16}{'client CPU ms/vote':>19}")
    for r in results:
        print(f"{r['route']:>7}{r['annotators']:>11}{r['votes']:>7}{r['votes_per_s']:>9.1f}{r['p50_ms']:>8.0f}{r['p95_ms']:>8.0f}"
              f"{r['max_ms']:>8.0f}{r['fetch_per_s']:>9.1f}{r['fetch_p50_ms']:>9.0f}{r['fetch_p95_ms']:>9.0f}"
              f"{r['errors']:>7}{r['server_cpu_ms']:>16.1f}{r['client_cpu_ms']:>19.1f}")
    print(f"votes confirmed {len(confirmed)} ({sum(r['recorded_answers'] for r in results)} answered 'Recorded', "
          f"{sum(r['repeats'] for r in results)} repeats answered 'Already recorded', {sum(r['errors'] for r in results)} "
          f"answers lost and sent again); in DuckDB {len(stored)} rows, {len(set(stored))} distinct; recorded twice: "
          f"{sum(r['twice'] for r in results)}; exactly once: {'PASS' if exactly_once else 'FAIL'}")
    return 0 if exactly_once else 1


if __name__ == "__main__":
    sys.exit(main())
