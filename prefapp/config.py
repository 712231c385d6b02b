"""Configuration dataclasses: one place for every knob, each default with its reason.

Nothing here imports torch or gradio, so configs can be built and validated anywhere.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

from prefapp.errors import ConfigError  # noqa: F401 - re-exported: most modules import it from here

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL_DIR = REPO_ROOT / "data" / "demo-model"  # built by `prefapp build-demo-model`, shipped in git
DEMO_PROMPTS_PATH = REPO_ROOT / "data" / "prompts" / "demo.jsonl"  # labelling prompts for the demo task
DEMO_EVAL_PROMPTS_PATH = REPO_ROOT / "data" / "prompts" / "demo_heldout.jsonl"  # the demo task's held-out eval set
DEFAULT_HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # smallest instruct model with a chat template
Choice = Literal["A", "B", "tie", "both_bad"]  # what an annotator can answer for a pair (typed API parameters)
CHOICES: tuple[str, ...] = get_args(Choice)
TRAIN_METHODS = ("dpo", "kto")  # DPO on pairs; KTO on single-sided labels (pairs unpaired, thumbs, both-bad)
SELECTION_MODES = ("coverage", "active")  # how the pair queue picks what to serve (prefapp.labeling.active)
# The values TRL's DPOConfig.loss_type documents; checked with the other settings so a typo fails before a model loads.
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0  # 1.0 keeps the policy's own distribution: two samples differ, DPO sees on-policy data
    top_p: float = 0.95  # trims the junk tail without making the pair identical
    max_new_tokens: int = 64  # demo answers are one sentence; raise for real models

    def validate(self) -> None:
        if not 0.0 < self.temperature <= 5.0:
            raise ConfigError(f"temperature={self.temperature} is out of range: use a value in (0, 5], e.g. 1.0")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p={self.top_p} is out of range: use a value in (0, 1], e.g. 0.95")
        if not 1 <= self.max_new_tokens <= 4096:
            raise ConfigError(f"max_new_tokens={self.max_new_tokens} is out of range: use 1..4096, e.g. 64")

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_GUIDELINES = """**Pick the response you would rather get.** Prefer the one that answers the question
correctly; then the shorter and politer one. *Tie*: equally good. *Both bad*: neither should be reinforced.
Sides are random: do not favour A or B. Keys: **1** A, **2** B, **3** tie, **4** both bad, **S** skip, **U** undo."""


@dataclass(frozen=True)
class LabelingConfig:
    queue_target: int = 16  # pairs kept ready ahead of annotators (0: none, generate after the click)
    queue_batch: int = 8  # prompts per generate call (x2 samples): most of batching's speed-up on a CPU
    overlap: int = 1  # annotators per pair; 2+ lets the Quality view measure agreement (costs labels)
    probe_rate: float = 0.0  # share of serves that repeat an already-voted pair with sides swapped (consistency)
    guidelines: str = DEFAULT_GUIDELINES  # Markdown shown beside the task
    identical_resamples: int = 2  # same-response pairs are drawn again this often before the temperature is raised
    near_identical: float = 0.0  # similarity (0..1) at which two responses count as the same; 0: only equal ones
    selection: str = "coverage"  # "coverage": least-labelled prompts; "active": pairs the last round is unsure of
    coverage_share: float = 0.3  # in active mode, share of pairs still chosen by coverage so no prompt is starved
    active_pool: int = 2  # in active mode, candidate pairs generated per pair kept (the rest are not served)

    def validate(self) -> None:
        if self.queue_target != 0 and not 1 <= self.queue_batch <= self.queue_target <= 1024:
            raise ConfigError(f"queue_batch={self.queue_batch}, queue_target={self.queue_target}: need "
                              "1 <= queue_batch <= queue_target <= 1024, e.g. 8 and 16 (queue_target=0: no queue)")
        if not 1 <= self.overlap <= 20:
            raise ConfigError(f"overlap={self.overlap} must be in 1..20: 1 (no overlap) or 2-3 to measure agreement")
        if not 0.0 <= self.probe_rate <= 0.5:
            raise ConfigError(f"probe_rate={self.probe_rate} must be in [0, 0.5], e.g. 0.05")
        if not 0 <= self.identical_resamples <= 10:
            raise ConfigError(f"identical_resamples={self.identical_resamples} must be in 0..10, e.g. 2")
        if not 0.0 <= self.near_identical <= 1.0:
            raise ConfigError(f"near_identical={self.near_identical} must be in [0, 1]: 0 (off) or e.g. 0.95")
        if self.selection not in SELECTION_MODES:
            raise ConfigError(f"selection={self.selection!r} is unknown: use one of {', '.join(SELECTION_MODES)}")
        if not 0.0 <= self.coverage_share <= 1.0:
            raise ConfigError(f"coverage_share={self.coverage_share} must be in [0, 1], e.g. 0.3")
        if not 1 <= self.active_pool <= 8:
            raise ConfigError(f"active_pool={self.active_pool} must be in 1..8, e.g. 2 candidates per pair kept")


def read_guidelines(path: str | Path) -> str:
    """Annotation guidelines (Markdown) from a file, or a ConfigError naming the fix."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the guidelines file {path} ({exc}): give a UTF-8 Markdown file") from exc


def labeling_from_env() -> LabelingConfig:
    """LabelingConfig with PREFAPP_OVERLAP, PREFAPP_PROBE_RATE, PREFAPP_QUEUE and PREFAPP_GUIDELINES (a file)."""
    base = LabelingConfig()
    try:
        queue = int(os.environ.get("PREFAPP_QUEUE", base.queue_target))
        config = LabelingConfig(
            queue_target=queue, queue_batch=min(base.queue_batch, max(queue, 1)),
            overlap=int(os.environ.get("PREFAPP_OVERLAP", base.overlap)),
            probe_rate=float(os.environ.get("PREFAPP_PROBE_RATE", base.probe_rate)),
            guidelines=read_guidelines(os.environ["PREFAPP_GUIDELINES"]) if os.environ.get("PREFAPP_GUIDELINES")
            else base.guidelines,
        )
    except ValueError as exc:
        raise ConfigError(f"PREFAPP_QUEUE/PREFAPP_OVERLAP/PREFAPP_PROBE_RATE must be numbers: {exc}") from exc
    config.validate()
    return config


LORA_ALPHA_PER_RANK = 2  # lora_alpha = 2 x lora_r, the common scaling: changing the rank keeps the update's scale


@dataclass(frozen=True)
class TrainConfig:
    beta: float = 0.1  # KL strength: TRL's default and the usual starting point
    learning_rate: float = 5e-4  # LoRA on a tiny model needs far more than the 5e-7..5e-6 of full fine-tuning
    num_epochs: float = 1.0  # one pass usually suffices for DPO; more overfits small sets
    batch_size: int = 8  # per-device pairs per step; small sets still get several steps
    gradient_accumulation_steps: int = 1  # raise to emulate a larger batch on small memory
    max_length: int = 512  # prompt+completion tokens; truncation silently destroys the training signal
    lora_r: int = 16  # adapter rank: enough capacity for a preference shift, few parameters
    lora_alpha: int = LORA_ALPHA_PER_RANK * 16  # follows lora_r: set both with with_rank()
    lora_dropout: float = 0.0  # tiny runs do not need it; dropout also makes policy/reference differ noisily
    loss_type: str = "sigmoid"  # the original DPO loss; TRL also offers ipo, hinge, robust, ...
    seed: int = 0  # same data + same seed = same adapter
    use_4bit: bool | None = None  # None: 4-bit only where CUDA exists (bitsandbytes); False forces full precision
    precompute_ref_log_probs: bool = False  # one reference pass up front: saves a forward per step, costs a pass
    save_steps: int = 50  # checkpoint every N steps (and on cancel) so a round can resume; 0: only on cancel
    method: str = "dpo"  # "dpo": preference pairs; "kto": every labelled completion (prefapp.training.kto)

    def __post_init__(self) -> None:
        # Checked once, when the config is built (a form, the API, the CLI, a stored round): an invalid TrainConfig
        # cannot exist, so nothing downstream checks these ranges again. What depends on the data is check_pairs().
        if not 0.0 < self.beta <= 10.0:
            raise ConfigError(f"beta={self.beta} must be in (0, 10]: start with 0.1 (higher stays closer to the base model)")
        if not 1e-8 <= self.learning_rate <= 1e-2:
            raise ConfigError(
                f"learning_rate={self.learning_rate} is outside any sane range: "
                "use 5e-7..5e-6 for full models, 1e-5..1e-3 for LoRA"
            )
        if not 0.0 < self.num_epochs <= 100:
            raise ConfigError(f"num_epochs={self.num_epochs} must be in (0, 100]: one epoch usually suffices for DPO")
        if not 1 <= self.batch_size <= 1024:
            raise ConfigError(f"batch_size={self.batch_size} must be in 1..1024, e.g. 8")
        if not 1 <= self.gradient_accumulation_steps <= 1024:
            raise ConfigError(f"gradient_accumulation_steps={self.gradient_accumulation_steps} must be in 1..1024")
        if not 16 <= self.max_length <= 131072:
            raise ConfigError(f"max_length={self.max_length} must be in 16..131072: pick one that fits prompt + answer")
        if not 1 <= self.lora_r <= 1024:
            raise ConfigError(f"lora_r={self.lora_r} must be in 1..1024, e.g. 16")
        if self.lora_alpha <= 0:
            raise ConfigError(f"lora_alpha={self.lora_alpha} must be positive, e.g. twice lora_r")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout={self.lora_dropout} must be in [0, 1), e.g. 0.0 or 0.05")
        if self.loss_type not in DPO_LOSS_TYPES:
            raise ConfigError(f"loss_type={self.loss_type!r} is unknown: use one of {', '.join(DPO_LOSS_TYPES)}")
        if self.method not in TRAIN_METHODS:
            raise ConfigError(f"method={self.method!r} is unknown: use 'dpo' (pairs) or 'kto' (labelled completions)")
        if self.save_steps < 0:
            raise ConfigError(f"save_steps={self.save_steps} must be >= 0: 0 checkpoints only on cancel, e.g. 50")

    def check_pairs(self, n_pairs: int) -> None:
        """Raise ConfigError naming the fix when these settings cannot train on `n_pairs` pairs (or rows)."""
        if n_pairs == 0:
            raise ConfigError("there are no preference pairs to train on: label some pairs (A or B), then export")
        if self.batch_size > n_pairs:
            raise ConfigError(f"batch_size={self.batch_size} is larger than the {n_pairs} pairs: use at most {n_pairs}")

    def with_rank(self, lora_r: int) -> "TrainConfig":
        """This config with LoRA rank `lora_r` and the alpha that goes with it (LORA_ALPHA_PER_RANK x rank)."""
        return replace(self, lora_r=lora_r, lora_alpha=LORA_ALPHA_PER_RANK * lora_r)

    def to_dict(self) -> dict:
        return asdict(self)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _default_data_dir() -> Path:
    # A Space with persistent storage mounts /data; use it so labels survive restarts.
    if "PREFAPP_DATA_DIR" in os.environ:
        return Path(os.environ["PREFAPP_DATA_DIR"])
    from prefapp.hosting.environment import persistent_data_dir

    return persistent_data_dir() or REPO_ROOT / "data"


def _env_flag(name: str) -> bool:
    return _env(name, "").strip().lower() in ("1", "true", "yes")


@dataclass
class AppConfig:
    model: str = "auto"  # Hub id, local path, "demo", or "auto" (SmolLM2-135M-Instruct when available)
    data_dir: Path = REPO_ROOT / "data"  # DuckDB file, exports and adapters live here
    db_path: Path | None = None  # default: <data_dir>/prefapp.duckdb
    prompts_path: Path | None = None  # extra prompts to load at start (.txt or .jsonl)
    host: str = "127.0.0.1"  # local only unless asked; Spaces set GRADIO_SERVER_NAME=0.0.0.0
    port: int = 7860  # Gradio's and Spaces' port
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    labeling: LabelingConfig = field(default_factory=LabelingConfig)  # queue, overlap, probes, guidelines
    users_file: Path | None = None  # accounts (TOML); None: PREFAPP_USERS_FILE / PREFAPP_USERS, else the app is open
    allow_public: bool = False  # serve on 0.0.0.0 without accounts, on purpose
    allow_outside_paths: bool = False  # user-typed import/export paths may leave data_dir only when an admin says so
    # Where pairs, chat and evaluation replies are generated: "local" (this process) or an OpenAI-compatible engine
    # at generator_url (vLLM, SGLang, TGI, llama.cpp, transformers serve); training always loads `model` itself.
    generator: str = "local"
    generator_url: str | None = None
    generator_model: str | None = None  # the engine's model name; None: the one model it serves
    evaluation: "EvalConfig" = field(default_factory=lambda: EvalConfig())  # eval set, gate, post-round checks

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.db_path = Path(self.db_path) if self.db_path is not None else self.data_dir / "prefapp.duckdb"

    @classmethod
    def from_env(cls, **given: object) -> "AppConfig":
        """The app's settings from the environment (PREFAPP_MODEL, PREFAPP_DATA_DIR, PREFAPP_DB, PREFAPP_HOST or
        GRADIO_SERVER_NAME, PREFAPP_PORT, PREFAPP_ALLOW_PUBLIC, PREFAPP_ALLOW_OUTSIDE_PATHS, PREFAPP_GENERATOR,
        PREFAPP_GENERATOR_URL, PREFAPP_GENERATOR_MODEL, the labelling and evaluation variables), then `given`
        (command-line flags) over them. The one place the environment is read."""
        try:
            port = int(_env("PREFAPP_PORT", "7860"))
        except ValueError as exc:
            raise ConfigError(f"PREFAPP_PORT must be a port number, e.g. 7860: {exc}") from exc
        settings: dict = {
            "model": _env("PREFAPP_MODEL", "auto"), "data_dir": _default_data_dir(),
            "host": _env("PREFAPP_HOST", _env("GRADIO_SERVER_NAME", "127.0.0.1")), "port": port,
            "labeling": labeling_from_env(), "allow_public": _env_flag("PREFAPP_ALLOW_PUBLIC"),
            "allow_outside_paths": _env_flag("PREFAPP_ALLOW_OUTSIDE_PATHS"),
            "generator": _env("PREFAPP_GENERATOR", "local"),
            "generator_url": _env("PREFAPP_GENERATOR_URL", "") or None,
            "generator_model": _env("PREFAPP_GENERATOR_MODEL", "") or None,
            "evaluation": eval_from_env(),
        }
        if os.environ.get("PREFAPP_DB"):
            settings["db_path"] = Path(os.environ["PREFAPP_DB"])
        settings.update(given)
        return cls(**settings)

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"


# What the demo loop trains with: a few-million-parameter model with LoRA wants a high learning rate and a few
# epochs over a couple of hundred pairs (the 5e-7..5e-6 of full fine-tuning would not move it); beta 0.05 lets
# it move further from the base, which the demo task rewards (measured: rude 14%->3%, rambling 19%->2%).
LOOP_TRAIN_CONFIG = TrainConfig(beta=0.05, learning_rate=1e-3, num_epochs=6, batch_size=8, max_length=256)


@dataclass(frozen=True)
class EvalConfig:
    holdout: float = 0.0  # share of imported prompts kept out of labelling as eval prompts (stable hash); 0: import
    #                       an eval set instead (the demo's is data/prompts/demo_heldout.jsonl)
    require_working: bool = False  # the promotion gate also refuses a round not yet judged *working*
    queue_target: int = 16  # eval pairs generated ahead of the judges, as for labelling
    queue_batch: int = 8  # prompts per generate call per policy
    check_prompts: int = 64  # eval prompts the automatic post-round checks sample per policy (0: no checks)

    def validate(self) -> None:
        if not 0.0 <= self.holdout <= 0.5:
            raise ConfigError(f"eval holdout={self.holdout} must be in [0, 0.5]: e.g. 0.1 keeps 10% of imported "
                              "prompts for evaluation (0 when you import an eval set)")
        if not 1 <= self.queue_batch <= max(self.queue_target, 1) or self.queue_target > 1024:
            raise ConfigError(f"eval queue_batch={self.queue_batch}, queue_target={self.queue_target}: need "
                              "1 <= queue_batch <= queue_target <= 1024, e.g. 8 and 16")
        if not 0 <= self.check_prompts <= 10_000:
            raise ConfigError(f"check_prompts={self.check_prompts} must be in 0..10000, e.g. 64")


def eval_from_env() -> EvalConfig:
    """EvalConfig with PREFAPP_EVAL_HOLDOUT (a share) and PREFAPP_REQUIRE_WORKING=1."""
    try:
        config = EvalConfig(holdout=float(os.environ.get("PREFAPP_EVAL_HOLDOUT", EvalConfig.holdout)),
                            require_working=_env_flag("PREFAPP_REQUIRE_WORKING"))
    except ValueError as exc:
        raise ConfigError(f"PREFAPP_EVAL_HOLDOUT must be a number such as 0.1: {exc}") from exc
    config.validate()
    return config
