"""Pairs per second: the local backend vs the same model served by a real engine, side by side in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/serving_throughput.py --pairs 32 --batch 8

Same model (the bundled demo model), same prompts, same SamplingConfig on every side, each generating `--pairs`
pairs in batches of `--batch` prompts x 2 samples, exactly as the pair queue asks its generator:
- local: `LocalGenerator` (the in-process policy, one batched `generate` call per batch);
- served, 1 in flight: `OpenAIGenerator` against `transformers serve data/demo-model`, one request at a time;
- served, N in flight: the same with a batch's requests sent together (IN_FLIGHT);
- served + continuous batching: the engine started with `--continuous-batching`, N in flight (skip: --no-cb);
- vLLM (`--vllm`, its CPU build from `make vllm`): N in flight, and the overlapped queue.
Then the pair queue itself on each engine (skip: --no-queue), drained by a reader that takes each pair as soon as
it is ready (annotators faster than the model), until `--pairs` were taken:
- queue, batch refill: `PairQueue(overlap=False)`, the queue before issue 12: a batch's requests go out together
  and the next batch waits for the slowest of them;
- queue, overlapped: `PairQueue` as it runs on an engine now: up to IN_FLIGHT requests kept in flight, a prompt's
  pair ready as soon as its own samples are.
The engine runs on this machine's CPU too, so this measures the HTTP path and the engine's batching, not a GPU.
Generated tokens are counted with the model's tokenizer (the demo model stops at end of turn). Prints figures
only; note the load average printed with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefapp.config import DEMO_MODEL_DIR, DEMO_PROMPTS_PATH, SamplingConfig  # noqa: E402
from prefapp.labeling.backends import IN_FLIGHT, LocalGenerator, OpenAIGenerator  # noqa: E402
from prefapp.labeling.pair_queue import PairQueue  # noqa: E402
from prefapp.models import Policy, resolve_model  # noqa: E402
from prefapp.preferences.prompts import load_prompt_file  # noqa: E402
from prefapp.store import Store, to_messages  # noqa: E402
from tests.engine import VLLM, _wait_healthy, transformers_serve, vllm_serve  # noqa: E402


def measure(generator, prompts: list, batch: int, sampling: SamplingConfig, tokenizer) -> tuple[float, int]:
    generator.sample(prompts[:2], sampling, num_samples=2)  # warm-up: first call pays one-off costs
    start, replies = time.perf_counter(), []
    for i in range(0, len(prompts), batch):
        replies += [r for pair in generator.sample(prompts[i:i + batch], sampling, num_samples=2) for r in pair]
    seconds = time.perf_counter() - start
    return seconds, sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)


def measure_queue(url: str, overlap: bool, prompts: list, batch: int, sampling: SamplingConfig, policy: Policy,
                  data: Path) -> tuple[float, int]:
    """Seconds until a reader that takes every pair at once has taken len(prompts) pairs from a PairQueue."""
    generator = OpenAIGenerator(url)
    generator.sample(prompts[:2], sampling, num_samples=2)  # warm-up, and learns whether the engine honours n
    with Store(data / f"queue-{overlap}-{time.monotonic_ns()}.duckdb") as store:
        store.add_prompts(prompts, source="bench")
        queue = PairQueue(policy, store, sampling, target=2 * batch, batch_size=batch, seed=0, generator=generator,
                          overlap=overlap)
        start, taken = time.perf_counter(), []
        queue.start()
        while len(taken) < len(prompts):
            pair = queue.take(wait_s=300)
            if pair is None:
                raise SystemExit(f"the queue gave no pair: {queue.status().error}")
            taken.append(pair)
        seconds = time.perf_counter() - start
        queue.stop()
        deadline = time.monotonic() + 120
        while queue.status().generating and time.monotonic() < deadline:  # the next row must not share the engine
            time.sleep(0.1)
    generator.close()
    replies = [r for p in taken for r in (p.first, p.second)]
    return seconds, sum(len(policy.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)


def measure_vllm(prompts: list, batch: int, sampling: SamplingConfig, policy: Policy, logs: Path,
                 no_queue: bool) -> list[tuple[str, float, int]]:
    """vLLM's rows: N in flight, then the overlapped pair queue on it."""
    if not VLLM.is_file():
        raise SystemExit(f"--vllm: vLLM is not installed at {VLLM}: run make vllm")
    with vllm_serve(DEMO_MODEL_DIR, logs) as engine:
        _wait_healthy(engine)
        gen = OpenAIGenerator(engine.url, in_flight=IN_FLIGHT)
        rows = [(f"vLLM, {IN_FLIGHT} in flight", *measure(gen, prompts, batch, sampling, policy.tokenizer))]
        gen.close()
        if not no_queue:
            rows.append(("queue on vLLM, overlapped", *measure_queue(engine.url, True, prompts, batch, sampling,
                                                                     policy, logs)))
    return rows


def line(name: str, pairs: int, seconds: float, tokens: int) -> str:
    return f"  {name:<48} {seconds:7.2f} s  {pairs / seconds:6.2f} pairs/s  {tokens / seconds:7.1f} tokens/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8, help="prompts per queue batch (queue_batch)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--no-cb", action="store_true", help="skip the --continuous-batching engine")
    parser.add_argument("--no-queue", action="store_true", help="skip the pair queue's batch vs overlapped rows")
    parser.add_argument("--vllm", action="store_true", help=f"also vLLM's CPU build ({VLLM}; make vllm)")
    args = parser.parse_args()
    prompts = [to_messages(p) for p in load_prompt_file(DEMO_PROMPTS_PATH)[:args.pairs]]
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    policy = Policy(resolve_model("demo"), device="cpu")
    results = [("local (in-process generate)", *measure(LocalGenerator(policy), prompts, args.batch, sampling,
                                                        policy.tokenizer))]
    engines = [("", ())] + ([] if args.no_cb else [(" + continuous batching", ("--continuous-batching",))])
    with tempfile.TemporaryDirectory() as logs:
        for label, extra in engines:
            with transformers_serve(DEMO_MODEL_DIR, Path(logs), extra=extra) as engine:
                in_flight = [IN_FLIGHT] if extra else [1, IN_FLIGHT]
                for n in in_flight:
                    gen = OpenAIGenerator(engine.url, in_flight=n)
                    results.append((f"served{label}, {n} in flight", *measure(gen, prompts, args.batch, sampling,
                                                                              policy.tokenizer)))
                    gen.close()
                for overlap in ([] if args.no_queue else [False, True]):
                    name = f"queue{label}, {'overlapped' if overlap else 'batch refill'}"
                    results.append((name, *measure_queue(engine.url, overlap, prompts, args.batch, sampling, policy,
                                                         Path(logs))))
        if args.vllm:
            results += measure_vllm(prompts, args.batch, sampling, policy, Path(logs), args.no_queue)
    print(f"demo model, {args.pairs} pairs in batches of {args.batch} x 2 samples, max_new_tokens="
          f"{args.max_new_tokens}, engines: transformers serve{' and vLLM' if args.vllm else ''} (CPU), load average "
          f"{os.getloadavg()[0]:.1f}")
    for name, seconds, tokens in results:
        print(line(name, args.pairs, seconds, tokens))


if __name__ == "__main__":
    main()
