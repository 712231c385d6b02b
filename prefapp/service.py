"""The closed loop as one object: the UI, the CLI and the tests all drive prefapp through `PrefService`.

It wires the store (DuckDB), the policy (base model + round adapters), generation, export and training
together. Methods map one-to-one to user intents and return plain dataclasses; a `ConfigError` or
`ValueError` means the user can fix something, and its message says what.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from datasets import Dataset

from prefapp.labeling import chat, generation
from prefapp.labeling.generation import prompt_text
from prefapp.labeling.backends import Generator, LocalGenerator, open_generator
from prefapp.config import AppConfig, ConfigError, DEMO_EVAL_PROMPTS_PATH, DEMO_PROMPTS_PATH, SamplingConfig
from prefapp.evaluation.heldout import add_labelling_prompts
from prefapp.evaluation.intents import EvalIntents
from prefapp.evaluation.judge import Evaluation
from prefapp.preferences.export import ExportCounts, ExportResult
from prefapp.labeling.intents import LabelingIntents
from prefapp.labeling.next_pair import Labeling, Progress
from prefapp.models import ModelChoice, Policy, resolve_model
from prefapp.preferences import pair_import
from prefapp.preferences.prompt_import import read_prompts, skipped_text, table_columns
from prefapp.labeling.quality import QualityReport, quality_report
from prefapp.preferences.resolve import ExportOptions, export_preferences, preference_dataset
from prefapp.preferences.prompts import load_prompt_file, parse_typed_prompts
from prefapp.hosting.durability import Keeper
from prefapp.hosting.paths import confine
from prefapp.store import Store, VoteCounts, to_messages
from prefapp.training.intents import TrainingIntents
from prefapp.training.job import TrainingJob
from prefapp.training.rounds import round_adapter_name  # noqa: F401 - the UI imports it from here

log = logging.getLogger(__name__)

CHOICE_WORDS = {"A": "A is better", "B": "B is better", "tie": "tie", "both_bad": "both bad"}


@dataclass(frozen=True)
class PairView:
    pair_id: str
    prompt: str  # the conversation as the annotator reads it
    response_a: str
    response_b: str
    generator: str  # which policy wrote both responses
    source: str = "queue"  # "queue" (ready ahead), "generated" (queue was empty), "overlap" or "probe"
    messages: tuple[dict, ...] = ()  # the prompt's turns: earlier turns of a conversation, then the user's last


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
    backend: str = "local"  # where pairs are generated: "local" or the engine's URL
    backend_model: str = ""  # the model name the backend generates with
    backend_text: str = ""  # one line for the header, e.g. "prefapp-demo served at http://127.0.0.1:8000/v1"


@dataclass(frozen=True)
class DataSummary:
    counts: VoteCounts
    prompts: int
    pairs: int  # A/B votes that would become DPO rows
    ties: int
    both_bad: int
    preview: list[dict]  # a few rows as {"prompt", "chosen", "rejected"} strings
    imported: dict[str, int] = field(default_factory=dict)  # imported pairs by source (pair_import)


class PrefService(EvalIntents, LabelingIntents, TrainingIntents):
    def __init__(self, config: AppConfig, store: Store, policy: Policy, seed: int | None = None,
                 backend: Generator | None = None) -> None:
        self.config = config
        self.store = store
        self.policy = policy
        self.backend: Generator = backend or LocalGenerator(policy)  # writes pairs, chat and evaluation replies
        self.sampling: SamplingConfig = config.sampling
        self.generator: str | None = None  # adapter that writes new pairs; None = the base model
        self.aligned: str | None = None  # adapter the chat tab shows next to the base
        self._job: TrainingJob | None = None
        self._job_round: int | None = None
        self._job_lock = threading.Lock()
        self.keeper: Keeper | None = None  # started by open(): a served store is checkpointed and backed up
        self._load_finished_rounds()
        self.labeling = Labeling(policy, store, config.labeling, self.sampling, seed=seed,  # pairs ahead of votes
                                 generator=self.backend)
        self.evaluation = Evaluation(policy, store, config.evaluation, seed=seed,  # blind eval pairs, gate, checks
                                     generator=self.backend)

    @classmethod
    def open(cls, config: AppConfig, choice: ModelChoice | None = None, seed: int | None = None) -> "PrefService":
        """Resolve and load the model, open the store, and seed the demo prompts into an empty store."""
        choice = choice or resolve_model(config.model)
        log.info("model: %s (%s)", choice.label, choice.reason)
        remote = bool(config.generator_url)
        policy = Policy(choice, lazy=remote)  # a remote engine generates: the weights load only if training needs them
        backend = open_generator(config.generator, config.generator_url, config.generator_model, policy)
        log.info("generator: %s", backend.describe())
        store = Store(config.db_path)
        service = cls(config, store, policy, seed=seed, backend=backend)
        service.keeper = Keeper(store, config.data_dir / "backups")  # checkpoints, marks, rotating backups
        if store.prompt_count() == 0 and DEMO_PROMPTS_PATH.exists():
            if store.eval_prompt_count() == 0 and DEMO_EVAL_PROMPTS_PATH.exists():  # the demo's held-out eval set
                service.import_eval_prompts(str(DEMO_EVAL_PROMPTS_PATH), uploaded=True)
            service.import_prompts(DEMO_PROMPTS_PATH, source="demo")
        if config.prompts_path:
            service.import_prompts(config.prompts_path)
        return service

    def close(self) -> None:
        """Stop training (recorded as cancelled) and the pair queue, then close the store cleanly (checkpointed)."""
        if self.cancel_training():
            try:
                self.wait_training(timeout=30)
            except Exception:  # the round's own error is recorded with it
                log.exception("the cancelled round ended with an error")
        if self.keeper is not None:
            self.keeper.close()
        self.labeling.close()
        self.evaluation.close()
        if hasattr(self.backend, "close"):
            self.backend.close()
        self.store.close()

    # --- model ---------------------------------------------------------------------------------

    def model_info(self) -> ModelInfo:
        c, b = self.policy.choice, self.backend
        return ModelInfo(c.label, c.source, c.reason, self.policy.device, self.generator or "base", self.aligned,
                         b.backend, b.model, b.describe())

    def set_sampling(self, temperature: float, top_p: float, max_new_tokens: int) -> SamplingConfig:
        """Change how new pairs are sampled (validated; applies to the next pair)."""
        sampling = SamplingConfig(float(temperature), float(top_p), int(max_new_tokens))
        sampling.validate()
        self.sampling = sampling
        self.labeling.configure(self.generator, sampling)
        return sampling

    def set_generator(self, adapter: str | None, confirm: bool = False, admin: str | None = None) -> str:
        """Make a round ('round-2', '2') or the base (None, 'base') the policy that writes new pairs: the same
        gate-checked intent as *Make generator* (`make_generator`), so no route skips the promotion gate."""
        return self.make_generator(adapter, confirm=confirm, admin=admin)

    def _use_generator(self, adapter: str | None) -> str:
        """The swap itself, for `make_generator` only (after the gate): a remote engine is asked to load the round
        first (PublishUnsupported: it cannot, and the message says how to merge and serve)."""
        published = self.backend.publish(adapter) if adapter else ""
        self.generator = adapter or None
        self.labeling.configure(self.generator, self.sampling)
        message = f"New pairs now come from {self.generator or 'the base model'}."
        return f"{message} {published}" if published else message

    def set_aligned(self, adapter: str | None) -> None:
        """Choose which round the chat compares with the base."""
        if adapter and adapter not in self.backend.adapters:
            raise ConfigError(f"{adapter} is not a finished round: pick one of {sorted(self.backend.adapters) or 'none yet'}")
        self.aligned = adapter or None

    # --- prompts -------------------------------------------------------------------------------

    def import_prompts(self, path: str | Path, source: str | None = None) -> str:
        """Add prompts from a .txt (one per line) or .jsonl file; duplicates are skipped and counted."""
        path = Path(path)
        prompts = load_prompt_file(path)
        self.check_fits_context(prompts)
        return self._add_prompts(prompts, source or f"file:{path.name}")

    def add_typed_prompts(self, text: str) -> str:
        """Add prompts typed in the app, one per line."""
        prompts = parse_typed_prompts(text)
        self.check_fits_context(prompts)
        return self._add_prompts(prompts, "typed")

    def import_prompt_source(self, source: str, column: str | None = None, split: str = "train",
                             uploaded: bool = False) -> str:
        """Add prompts from .txt/.jsonl/.csv/.parquet, a saved dataset folder or a Hub dataset (`column` picks the
        prompt column); duplicates, unusable rows and prompts too long for the context are skipped and counted."""
        source = self._prompt_source(source, uploaded)
        read = read_prompts(source, column or None, split)
        prompts, too_long = [], []
        for n, prompt in enumerate(read.prompts, 1):
            try:
                self.check_fits_context([prompt])
                prompts.append(prompt)
            except ConfigError as exc:
                too_long.append(f"prompt {n}: {exc.__cause__ or exc}")
        added = self._add_prompts(prompts, f"import:{Path(source).name or source}"[:200])
        extra = [t for t in (skipped_text(read.skipped + too_long),) if t]
        column_note = f" from column {read.column!r}" if read.column else ""
        return added[:-1] + column_note + "".join(f"; {t}" for t in extra) + "."

    def _add_prompts(self, prompts: list, source: str) -> str:
        """Labelling prompts in, less eval prompts; the held-out share (PREFAPP_EVAL_HOLDOUT) joins the eval set."""
        added = add_labelling_prompts(self.store, prompts, source, self.config.evaluation.holdout)
        return _added_message(added.result)[:-1] + added.note() + "."

    def preview_import(self, source: str, split: str = "train", format: str = "auto",
                       uploaded: bool = False) -> pair_import.Parsed:
        """Read and parse preference data without writing: the detected format and its first parsed rows."""
        return pair_import.preview(self._prompt_source(source, uploaded), split, format)

    def import_preferences(self, source: str, split: str = "train", format: str = "auto",
                           uploaded: bool = False) -> pair_import.ImportReport:
        """Import preference pairs (or labelled completions) in one transaction; a re-import adds nothing."""
        return pair_import.import_source(self.store, self._prompt_source(source, uploaded), split, format)

    def imported_counts(self) -> dict[str, int]:
        """Imported pairs by source (file name or Hub id)."""
        return self.store.imported_counts()

    def prompt_columns(self, source: str, split: str = "train", uploaded: bool = False) -> list[str]:
        """The columns of a table or dataset to choose the prompt column from ([] for .txt/.jsonl)."""
        return table_columns(self._prompt_source(source, uploaded), split)

    def _prompt_source(self, source: str, uploaded: bool) -> str:
        source = (source or "").strip()
        local = Path(source).expanduser()
        if not uploaded and (local.exists() or local.suffix or (self.config.data_dir / source).exists()):
            return str(self.user_path(source))  # a typed local path stays inside the data directory
        return source  # an uploaded file, or a Hub dataset name

    def check_fits_context(self, prompts: list) -> None:
        """Refuse the batch if a prompt leaves the model no room to answer: stored, it would block labelling."""
        for n, prompt in enumerate(prompts, 1):
            try:
                messages = to_messages(prompt)
            except ValueError:
                continue  # malformed: the store skips it and says why
            try:
                generation.render_prompts(self.policy, [messages], self.sampling)
            except ConfigError as exc:
                raise ConfigError(f"prompt {n}: {exc}. Nothing was added.") from exc

    def user_path(self, path: str | Path) -> Path:
        """A path typed by a user (import file, export folder), confined to the data directory unless allowed."""
        return confine(path, self.config.data_dir, self.config.allow_outside_paths)

    # --- labelling -----------------------------------------------------------------------------

    def next_pair(self, annotator: str) -> PairView:
        """The next pair for `annotator` (least-labelled prompt, random sides), from the ready queue when it can."""
        self._follow_round()  # a new round scores candidate pairs (active selection)
        served = self.labeling.serve(_annotator(annotator), self.generator, self.sampling)
        return _view(served.pair, served.source)

    def undo(self, annotator: str) -> PairView | None:
        """Take back the annotator's last vote and show that pair again; None when there is nothing to undo."""
        pair = self.labeling.undo(_annotator(annotator))
        return None if pair is None else _view(pair, "undo")

    def progress(self) -> Progress:
        """Prompts still needing labels, overlap still owed, and the ready queue."""
        return self.labeling.progress()

    def ready_pairs(self) -> int:
        """Pairs waiting in the queue: 0 means the next pair makes its annotator wait for the model."""
        return self.labeling.queue.status().ready

    def quality(self) -> QualityReport:
        """Per-annotator habits, agreement on overlapped pairs and consistency on repeat probes."""
        return quality_report(self.store)

    def vote(self, pair_id: str, choice: str, annotator: str, reason: str = "", written: str = "") -> VoteOutcome:
        """Record an annotator's pick for a pair (optionally why, and a better response they wrote); a repeated
        vote changes nothing."""
        annotator = _annotator(annotator)
        if written.strip() and choice not in ("A", "B", "both_bad"):
            raise ConfigError("a written response is the better answer: vote A, B or Both bad with it (or clear it)")
        result = self.store.record_vote((pair_id or "").strip(), choice, annotator, reason, written)
        counts = result.counts
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
        """Counts and the first rows of what an export would contain (DuckDB counts; only the preview is read)."""
        preview_set, resolved = preference_dataset(self.store, ExportOptions(), limit=preview_rows)
        counts = resolved.as_export_counts()
        preview = [
            {"prompt": prompt_text(r["prompt"]), "chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]}
            for r in preview_set
        ]
        return DataSummary(
            self.store.vote_counts(), self.store.prompt_count(), counts.pairs, counts.ties, counts.both_bad, preview,
            self.store.imported_counts(),
        )

    def export(self, name: str | None = None, options: ExportOptions | None = None) -> ExportResult:
        """Write the preference rows (prefapp.preferences.resolve, under `options`) as a datasets dataset
        (save_to_disk + Parquet) under data/exports/; the result says what was left out and why."""
        return export_preferences(self.store, self.config.exports_dir, name, options or ExportOptions())

    def _preferences(self, options: ExportOptions | None = None) -> tuple[Dataset, ExportCounts]:
        """The DPO rows the votes make, resolved as an export would (probes out, overlaps by majority)."""
        dataset, counts = preference_dataset(self.store, options or ExportOptions())
        return dataset, counts.as_export_counts()

    def backup(self) -> Path:
        """A consistent copy of the DuckDB file under data/backups/, taken while labelling goes on."""
        name = f"prefapp-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}.duckdb"
        return self.store.snapshot(self.config.data_dir / "backups" / name)

    # --- training ------------------------------------------------------------------------------

    def chat(self, base_history: list[dict], aligned_history: list[dict], message: str) -> tuple[str, str | None]:
        """The base model's and the aligned model's replies to the same message (None: no round yet)."""
        return chat.replies(self.backend, self.sampling, self._chat_adapter(), base_history, aligned_history, message)

    def chat_stream(self, base_history: list[dict], aligned_history: list[dict], message: str
                    ) -> Iterator[tuple[str, str | None]]:
        """`chat`, streamed as the backend writes: (base so far, aligned so far or None), the base first."""
        return chat.stream(self.backend, self.sampling, self._chat_adapter(), base_history, aligned_history, message)

    def _chat_adapter(self) -> str | None:
        """The aligned round when the backend can generate with it (an engine: once it has loaded it)."""
        if self.aligned is None or not self.backend.can_use(self.aligned):
            return None
        return self.aligned

    def send_to_labeling(self, conversation: list[dict]) -> str:
        """Make a chat (ending with a user turn) a labelling prompt: its next reply becomes the next pair."""
        messages = generation.as_messages(conversation)
        self.check_fits_context([messages])
        result = self.store.add_prompts([messages], source="chat")
        if result.invalid:
            raise ConfigError(f"this conversation cannot be a prompt: {'; '.join(result.errors)}")
        self.labeling.put_first(self.store.prompt_by_messages(messages), self.generator, self.sampling)
        turns = f"{len(messages)} turns" if len(messages) > 1 else "1 turn"
        again = "" if result.added else " (it was already a prompt; it gets one more pair)"
        return f"Sent to labelling ({turns}){again}: the next pair is two replies to it."


def _view(pair, source: str) -> PairView:
    return PairView(pair.id, prompt_text(pair.prompt), pair.response_a, pair.response_b, pair.adapter_id or "base",
                    source, tuple(pair.prompt))


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
