"""The closed loop as one object: the UI, the CLI and the tests all drive prefapp through `PrefService`.

It wires the store (DuckDB), the policy (base model + round adapters), generation, export and training
together. Methods map one-to-one to user intents and return plain dataclasses; a `ConfigError` or
`ValueError` means the user can fix something, and its message says what.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from prefapp import generation
from prefapp.config import AppConfig, ConfigError, DEMO_PROMPTS_PATH, SamplingConfig, TrainConfig
from prefapp.export import PREFERENCE_COLUMNS, ExportResult, build_dataset, export_preferences, save_export
from prefapp.models import ModelChoice, Policy, resolve_model
from prefapp.prompts import load_prompt_file, parse_typed_prompts
from prefapp.store import Round, Store, VoteCounts
from prefapp.training import TrainingJob, TrainProgress, TrainResult

log = logging.getLogger(__name__)

CHOICE_WORDS = {"A": "A is better", "B": "B is better", "tie": "tie", "both_bad": "both bad"}


@dataclass(frozen=True)
class PairView:
    pair_id: str
    prompt: str  # the conversation as the annotator reads it
    response_a: str
    response_b: str
    generator: str  # which policy wrote both responses


@dataclass(frozen=True)
class VoteOutcome:
    recorded: bool  # False when this annotator had already voted on the pair (nothing changed)
    message: str
    counts: VoteCounts


@dataclass(frozen=True)
class ModelInfo:
    label: str
    source: str
    reason: str
    device: str
    generator: str  # "base" or the round whose adapter writes new pairs
    aligned: str | None  # the round the chat tab compares against the base


@dataclass(frozen=True)
class DataSummary:
    counts: VoteCounts
    prompts: int
    pairs: int  # A/B votes that would become DPO rows
    ties: int
    both_bad: int
    preview: list[dict]  # a few rows as {"prompt", "chosen", "rejected"} strings


def prompt_text(messages: list[dict]) -> str:
    """A single user turn reads as itself; a conversation as 'role: content' blocks."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def round_adapter_name(round_id: int) -> str:
    return f"round-{round_id}"


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


class PrefService:
    def __init__(self, config: AppConfig, store: Store, policy: Policy, seed: int | None = None) -> None:
        self.config = config
        self.store = store
        self.policy = policy
        self.sampling: SamplingConfig = config.sampling
        self.generator: str | None = None  # adapter that writes new pairs; None = the base model
        self.aligned: str | None = None  # adapter the chat tab shows next to the base
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._job: TrainingJob | None = None
        self._job_round: int | None = None
        self._job_lock = threading.Lock()
        self._load_finished_rounds()

    @classmethod
    def open(cls, config: AppConfig, choice: ModelChoice | None = None, seed: int | None = None) -> "PrefService":
        """Resolve and load the model, open the store, and seed the demo prompts into an empty store."""
        choice = choice or resolve_model(config.model)
        log.info("model: %s (%s)", choice.label, choice.reason)
        policy = Policy(choice)
        store = Store(config.db_path)
        service = cls(config, store, policy, seed=seed)
        if store.prompt_count() == 0 and DEMO_PROMPTS_PATH.exists():
            service.import_prompts(DEMO_PROMPTS_PATH, source="demo")
        if config.prompts_path:
            service.import_prompts(config.prompts_path)
        return service

    def close(self) -> None:
        self.cancel_training()
        self.store.close()

    # --- model ---------------------------------------------------------------------------------

    def model_info(self) -> ModelInfo:
        c = self.policy.choice
        return ModelInfo(c.label, c.source, c.reason, self.policy.device, self.generator or "base", self.aligned)

    def set_sampling(self, temperature: float, top_p: float, max_new_tokens: int) -> SamplingConfig:
        """Change how new pairs are sampled (validated; applies to the next pair)."""
        sampling = SamplingConfig(float(temperature), float(top_p), int(max_new_tokens))
        sampling.validate()
        self.sampling = sampling
        return sampling

    def set_generator(self, adapter: str | None) -> str:
        """Make a round's adapter (or the base, with None) the policy that writes new pairs."""
        if adapter and adapter not in self.policy.adapters:
            raise ConfigError(f"{adapter} is not a finished round: pick one of {sorted(self.policy.adapters) or 'none yet'}")
        self.generator = adapter or None
        return f"New pairs now come from {self.generator or 'the base model'}."

    def set_aligned(self, adapter: str | None) -> None:
        """Choose which round the chat compares with the base."""
        if adapter and adapter not in self.policy.adapters:
            raise ConfigError(f"{adapter} is not a finished round: pick one of {sorted(self.policy.adapters) or 'none yet'}")
        self.aligned = adapter or None

    # --- prompts -------------------------------------------------------------------------------

    def import_prompts(self, path: str | Path, source: str | None = None) -> str:
        """Add prompts from a .txt (one per line) or .jsonl file; duplicates are skipped and counted."""
        path = Path(path)
        prompts = load_prompt_file(path)
        result = self.store.add_prompts(prompts, source=source or f"file:{path.name}")
        return _added_message(result)

    def add_typed_prompts(self, text: str) -> str:
        """Add prompts typed in the app, one per line."""
        result = self.store.add_prompts(parse_typed_prompts(text), source="typed")
        return _added_message(result)

    # --- labelling -----------------------------------------------------------------------------

    def next_pair(self, annotator: str) -> PairView:
        """Generate two responses to the least-labelled prompt and show them in random order."""
        annotator = _annotator(annotator)
        prompt = self.store.next_prompt(self._fork_rng())
        if prompt is None:
            raise ConfigError("there are no prompts yet: add some in the Data tab (or import a file)")
        adapter = self.generator
        first, second = generation.generate_pair(self.policy, prompt.messages, self.sampling, adapter=adapter)
        swapped = self._coin()
        a, b = (second, first) if swapped else (first, second)
        pair = self.store.add_pair(
            prompt, a, b, swapped, model_id=self.policy.choice.label, adapter_id=adapter,
            sampling=self.sampling.to_dict(), served_to=annotator,
        )
        return PairView(pair.id, prompt_text(prompt.messages), a, b, adapter or "base")

    def vote(self, pair_id: str, choice: str, annotator: str) -> VoteOutcome:
        """Record an annotator's pick for a pair; a repeated vote changes nothing."""
        annotator = _annotator(annotator)
        result = self.store.record_vote((pair_id or "").strip(), choice, annotator)
        counts = self.store.vote_counts(annotator)
        word = CHOICE_WORDS[result.vote.choice]
        if result.created:
            message = f"Recorded: {word}. You: {counts.mine} votes, everyone: {counts.total}."
        else:
            message = f"Already recorded ({word}) for this pair; nothing changed. You: {counts.mine}, everyone: {counts.total}."
        return VoteOutcome(result.created, message, counts)

    def counts(self, annotator: str | None = None) -> VoteCounts:
        return self.store.vote_counts((annotator or "").strip() or None)

    # --- data ----------------------------------------------------------------------------------

    def data_summary(self, preview_rows: int = 20) -> DataSummary:
        """Counts and the first rows of what an export would contain."""
        dataset, counts = build_dataset(self.store.votes())
        preview = [
            {"prompt": prompt_text(r["prompt"]), "chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]}
            for r in dataset.select(range(min(preview_rows, len(dataset))))
        ]
        return DataSummary(
            self.store.vote_counts(), self.store.prompt_count(), counts.pairs, counts.ties, counts.both_bad, preview
        )

    def export(self, name: str | None = None) -> ExportResult:
        """Write the A/B votes as a datasets dataset (save_to_disk + Parquet) under data/exports/."""
        return export_preferences(self.store.votes(), self.config.exports_dir, name)

    # --- training ------------------------------------------------------------------------------

    def start_training(self, config: TrainConfig, on_finish: Callable[[int], None] | None = None) -> int:
        """Export the current votes and start a DPO round in the background; returns the round id."""
        with self._job_lock:
            if self._job is not None and self._job.running:
                raise ConfigError(f"round {self._job_round} is still training: wait for it or cancel it first")
            dataset, counts = build_dataset(self.store.votes())
            config.validate(counts.pairs)
            round_id = self.store.start_round(
                base_model=self.policy.choice.source, config=config.to_dict(), export_path=None, n_pairs=counts.pairs
            )
            try:
                export = save_export(dataset, counts, self.config.exports_dir, f"{round_adapter_name(round_id)}-{stamp()}")
                train_set = dataset.select_columns(list(PREFERENCE_COLUMNS))
                output_dir = self.config.adapters_dir / f"{round_adapter_name(round_id)}-{stamp()}"
                self._job = TrainingJob(
                    self.policy.choice.source, train_set, config, output_dir,
                    on_finish=lambda result, error: self._finish_round(round_id, export, result, error, on_finish),
                )
                self._job_round = round_id
                self._job.start()
            except Exception as exc:
                self.store.fail_round(round_id, f"could not start: {exc}")
                raise
        log.info("round %d: training on %d pairs", round_id, counts.pairs)
        return round_id

    def training_status(self) -> TrainProgress | None:
        job = self._job
        return job.status() if job is not None else None

    def training_running(self) -> bool:
        """True until a round's thread has ended, recording included (its adapter is loaded by then)."""
        job = self._job
        return job is not None and job.running

    def cancel_training(self) -> bool:
        job = self._job
        if job is None or not job.running:
            return False
        job.cancel()
        return True

    def wait_training(self, timeout: float | None = None) -> TrainResult | None:
        job = self._job
        return job.wait(timeout) if job is not None else None

    def rounds(self) -> list[Round]:
        return self.store.rounds()

    def _finish_round(
        self, round_id: int, export: ExportResult, result: TrainResult | None, error: BaseException | None,
        on_finish: Callable[[int], None] | None,
    ) -> None:
        if result is None or error is not None:
            self.store.fail_round(round_id, f"{type(error).__name__}: {error}" if error else "no result")
        elif result.cancelled:
            self.store.fail_round(round_id, "cancelled by the user", status="cancelled")
        else:
            metrics = {**result.metrics, "steps": result.steps, "seconds": result.seconds, "precision": result.precision,
                       "export": str(export.dataset_dir)}
            self.store.finish_round(round_id, str(result.adapter_dir), metrics)
            name = round_adapter_name(round_id)
            self.policy.load_adapter(name, result.adapter_dir)
            self.aligned = name
        if on_finish:
            on_finish(round_id)

    def _load_finished_rounds(self) -> None:
        for rnd in sorted(self.store.rounds(), key=lambda r: r.id):
            if rnd.status != "finished" or rnd.base_model != self.policy.choice.source:
                continue
            if not rnd.adapter_path or not Path(rnd.adapter_path).exists():
                log.warning("round %d: adapter %s is missing; skipped", rnd.id, rnd.adapter_path)
                continue
            self.policy.load_adapter(round_adapter_name(rnd.id), rnd.adapter_path)
            self.aligned = round_adapter_name(rnd.id)

    # --- compare -------------------------------------------------------------------------------

    def chat(self, base_history: list[dict], aligned_history: list[dict], message: str) -> tuple[str, str | None]:
        """The base model's and the aligned model's replies to the same message (None: no round yet)."""
        turn = generation.as_messages(message)
        base = generation.reply(self.policy, base_history + turn, self.sampling, adapter=None)
        if self.aligned is None:
            return base, None
        aligned = generation.reply(self.policy, aligned_history + turn, self.sampling, adapter=self.aligned)
        return base, aligned

    # --- helpers -------------------------------------------------------------------------------

    def _coin(self) -> bool:
        with self._rng_lock:
            return self._rng.random() < 0.5

    def _fork_rng(self) -> random.Random:
        with self._rng_lock:
            return random.Random(self._rng.random())


def _annotator(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ConfigError("enter your name in the annotator field first, so your votes are attributed")
    if len(name) > 100:
        raise ConfigError("the annotator name is longer than 100 characters: use a shorter name")
    return name


def _added_message(result) -> str:
    parts = [f"added {result.added} prompt(s)"]
    if result.duplicates:
        parts.append(f"skipped {result.duplicates} duplicate(s)")
    if result.invalid:
        parts.append(f"skipped {result.invalid} invalid ({'; '.join(result.errors[:3])})")
    return ", ".join(parts) + "."
