"""Preflight: everything that can be said about a DPO run before a model is loaded for training.

TRL users lose runs to things that were knowable up front: pairs whose chosen and rejected are the same, answers cut
by `max_length` until nothing tells them apart, a chat template that doubles the BOS token, a batch that does not
fit, a learning rate for the wrong mode. `run_preflight` measures these with the model's own tokenizer and chat
template (tokenized the way TRL 1.16 does: the prompt with the generation prompt, prompt+answer in full, the
answer is what follows the common prefix; cut from the end at max_length) and returns one report whose errors
block the start and whose warnings say what to change.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from datasets import Dataset

from prefapp.config import ConfigError, TrainConfig

KEEP_SHARE = 0.95  # the suggested max_length keeps this share of pairs uncut
AUDIT_ROWS = 5000  # above this a random sample is tokenized: shares then carry at most +-1.4% (95%), enough to act on
AUDIT_BATCH = 512  # rows per batched tokenizer call
AUDIT_SEED = 0  # the same data gets the same sample, so a report does not flicker between clicks
CACHE_SIZE = 8  # reports kept per process, by dataset fingerprint and settings
TINY_PARAMS = 100e6  # below this a model counts as tiny (LoRA learning rates up to 1e-3 are fine)
LARGE_PARAMS = 3e9  # above this a model counts as large (lower learning rates, smaller batches)
MEMORY_HEADROOM = 0.8  # warn when the estimate passes this share of the free memory: allocators fragment


@dataclass(frozen=True)
class Issue:
    level: str  # "error" blocks the start; "warning" is advice
    message: str  # what is wrong and what to do


@dataclass(frozen=True)
class DataCheck:
    pairs: int  # rows that would train
    duplicates: int  # rows that repeat an earlier (prompt, chosen, rejected) exactly
    identical: int  # chosen == rejected: no preference signal
    empty: int  # chosen or rejected is blank
    ties_dropped: int  # tie votes left out of the dataset
    both_bad_dropped: int  # both-bad votes left out of the dataset


@dataclass(frozen=True)
class LengthAudit:
    max_length: int
    audited: int  # rows tokenized: all of them up to AUDIT_ROWS, else a random sample of AUDIT_ROWS
    truncated: int  # prompt + longer answer exceeds max_length: TRL cuts from the end
    lost_difference: int  # after the cut, chosen and rejected are the same token sequence: zero signal
    dropped: int  # the prompt alone fills max_length: nothing of the answers survives
    longest: int  # tokens of the longest prompt + answer
    prompt_max: int
    chosen_max: int
    rejected_max: int
    suggested_max_length: int  # keeps KEEP_SHARE of pairs uncut (multiple of 16)
    population: int = 0  # rows in the dataset (audited < population: the counts are of a random sample)
    margin: float = 0.0  # 95% margin of error of any share estimated from the sample (0: every row tokenized)


@dataclass(frozen=True)
class MemoryEstimate:
    params: int  # parameters of the base model
    trainable: int  # LoRA parameters that get gradients and optimizer state
    weight_bytes: float  # per parameter: 4 fp32, 2 bf16, ~0.55 4-bit
    total_gb: float  # weights + trainable state + activations + logits
    available_gb: float  # free memory on the training device now
    device: str
    breakdown: dict[str, float] = field(default_factory=dict)  # GB per part


@dataclass(frozen=True)
class PreflightReport:
    data: DataCheck
    lengths: LengthAudit | None  # None when there is nothing to tokenize
    memory: MemoryEstimate
    preview: str  # one example exactly as the model will read it (chat template applied, special tokens shown)
    suggested: dict  # settings scaled to this model and mode, for reference
    issues: list[Issue]

    @property
    def ok(self) -> bool:
        return not any(i.level == "error" for i in self.issues)

    @property
    def errors(self) -> list[str]:
        return [i.message for i in self.issues if i.level == "error"]

    def first_error(self) -> str | None:
        return next(iter(self.errors), None)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "ok": self.ok}

    def markdown(self, include_preview: bool = True) -> str:
        """The report as a short Markdown page (the UI shows the preview apart, in a read-only textbox)."""
        d, m = self.data, self.memory
        lines = [f"**Preflight: {'ready to train' if self.ok else 'fix the errors below first'}**", ""]
        issues = [f"- {'ERROR' if i.level == 'error' else 'Warning'}: {i.message}" for i in self.issues]
        lines += issues or ["- no problems found"]
        lines += ["", f"**Data**: {d.pairs} pairs; {d.duplicates} duplicates, {d.identical} with chosen = rejected, "
                  f"{d.empty} with an empty response; dropped: {d.ties_dropped} ties, {d.both_bad_dropped} both bad."]
        if self.lengths:
            a = self.lengths
            scope = (f"a random sample of {a.audited} of {a.population} pairs tokenized, shares within "
                     f"+-{a.margin:.1%} at 95%" if a.margin else f"{a.audited} pairs tokenized")
            lines.append(f"\n**Lengths** (max_length {a.max_length}, {scope}): {a.truncated} cut, "
                         f"{a.lost_difference} lose all difference, {a.dropped} dropped; longest {a.longest} tokens "
                         f"(prompt up to {a.prompt_max}, chosen {a.chosen_max}, rejected {a.rejected_max}); "
                         f"max_length {a.suggested_max_length} keeps {KEEP_SHARE:.0%}.")
        lines.append(f"\n**Memory** ({m.device}): about {m.total_gb:.2f} GB of {m.available_gb:.1f} GB free "
                     f"({m.params / 1e6:.1f}M parameters, {m.trainable / 1e6:.2f}M trainable LoRA; "
                     + ", ".join(f"{k} {v:.2f} GB" for k, v in m.breakdown.items()) + ").")
        lines.append("\n**Suggested for this model**: " + ", ".join(f"{k}={v}" for k, v in self.suggested.items()))
        if self.preview and include_preview:
            lines += ["", "**One example as the model reads it** (chat template applied, special tokens shown):",
                      "```", self.preview, "```"]
        return "\n".join(lines)


# --- the entry point ---------------------------------------------------------------------------------------------


def run_preflight(
    dataset: Dataset, config: TrainConfig, tokenizer: Any, model_config: Any,
    ties_dropped: int = 0, both_bad_dropped: int = 0, device: str | None = None,
) -> PreflightReport:
    """Check data, lengths, memory and settings for a DPO LoRA run; never loads or trains a model. The data checks
    and the tokenization are cached by the dataset's fingerprint: an unchanged dataset is not tokenized twice."""
    data, lengths, preview = _data_report(dataset, tokenizer, config.max_length)
    data = replace(data, ties_dropped=ties_dropped, both_bad_dropped=both_bad_dropped)
    context, too_long = _context_length(model_config), []
    if lengths and lengths.suggested_max_length > context:  # suggest no more than the model can read, and say so
        lengths = replace(lengths, suggested_max_length=context)
        too_long = [Issue("warning", f"the data does not fit the model: more than {1 - KEEP_SHARE:.0%} of pairs are "
                                     f"longer than its context of {context} tokens (the longest: {lengths.longest}); "
                                     f"they will be cut at max_length={context} at most: shorten the responses or "
                                     "use a longer-context model")]
    memory = estimate_memory(model_config, config, device)
    params = memory.params
    issues = too_long + check_hyperparameters(config, data.pairs, params, context,
                                              longest=lengths.longest if lengths else None)
    issues += _data_issues(data) + (_length_issues(lengths) if lengths else []) + _memory_issues(memory, config)
    issues += _template_issues(preview, tokenizer)
    suggested = {k: v for k, v in scaled_defaults(params).to_dict().items()
                 if k in ("learning_rate", "batch_size", "lora_r", "lora_alpha", "num_epochs")}
    if lengths:
        suggested["max_length"] = lengths.suggested_max_length
    return PreflightReport(data, lengths, memory, preview, suggested, issues)


_reports: OrderedDict[tuple, tuple[DataCheck, LengthAudit | None, str]] = OrderedDict()
_reports_lock = threading.Lock()


def _data_report(dataset: Dataset, tokenizer: Any, max_length: int) -> tuple[DataCheck, LengthAudit | None, str]:
    """(data check, length audit, preview) of `dataset`, from the cache when this dataset was audited before."""
    template = getattr(tokenizer, "chat_template", None) or ""
    key = (dataset._fingerprint, getattr(tokenizer, "name_or_path", ""), len(tokenizer), hash(template), max_length)
    with _reports_lock:
        if key in _reports:
            _reports.move_to_end(key)
            return _reports[key]
    data = check_data(dataset)
    usable = _usable(dataset)
    lengths = audit_lengths(dataset, tokenizer, max_length) if usable else None
    preview = tokenized_preview(dataset[0], tokenizer) if usable else ""
    with _reports_lock:
        _reports[key] = (data, lengths, preview)
        while len(_reports) > CACHE_SIZE:
            _reports.popitem(last=False)
    return data, lengths, preview


# --- data --------------------------------------------------------------------------------------------------------


def _usable(dataset: Dataset) -> bool:
    return len(dataset) > 0 and {"prompt", "chosen", "rejected"} <= set(dataset.column_names)


def _answer(messages: Any) -> str:
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return str(messages[-1].get("content", ""))
    return str(messages or "")


def _is_conversation(field_type: Any) -> bool:
    import pyarrow as pa

    return (pa.types.is_list(field_type) or pa.types.is_large_list(field_type)) and \
        pa.types.is_struct(field_type.value_type) and field_type.value_type.get_field_index("content") >= 0


def check_data(dataset: Dataset, ties_dropped: int = 0, both_bad_dropped: int = 0) -> DataCheck:
    """Counts of rows that carry no or repeated signal, counted by DuckDB over the dataset's Arrow table."""
    if not _usable(dataset):
        return DataCheck(len(dataset), 0, 0, 0, ties_dropped, both_bad_dropped)
    table = dataset.select_columns(["prompt", "chosen", "rejected"]).with_format("arrow")[:]
    if not all(_is_conversation(table.schema.field(c).type) for c in ("chosen", "rejected")):
        return _check_rows(dataset, ties_dropped, both_bad_dropped)  # plain-text answers: small hand-made sets
    import duckdb

    with duckdb.connect() as con:
        con.register("t", table)
        duplicates, identical, empty = con.execute(
            "WITH a AS (SELECT prompt, chosen, rejected, coalesce(chosen[-1].content, '') AS c, "
            "coalesce(rejected[-1].content, '') AS r FROM t) "
            "SELECT count(*) - count(DISTINCT {'p': prompt, 'c': chosen, 'r': rejected}), count(*) FILTER (c = r), "
            "count(*) FILTER (regexp_full_match(c, '\\s*') OR regexp_full_match(r, '\\s*')) FROM a").fetchall()[0]
    return DataCheck(len(dataset), duplicates, identical, empty, ties_dropped, both_bad_dropped)


def _check_rows(dataset: Dataset, ties_dropped: int, both_bad_dropped: int) -> DataCheck:
    rows = list(dataset.select_columns(["prompt", "chosen", "rejected"]))
    seen: set[str] = set()
    duplicates = 0
    for row in rows:
        key = json.dumps(row, sort_keys=True)
        duplicates += key in seen
        seen.add(key)
    identical = sum(_answer(r["chosen"]) == _answer(r["rejected"]) for r in rows)
    empty = sum(not _answer(r["chosen"]).strip() or not _answer(r["rejected"]).strip() for r in rows)
    return DataCheck(len(dataset), duplicates, identical, empty, ties_dropped, both_bad_dropped)


def _data_issues(d: DataCheck) -> list[Issue]:
    issues = []
    if d.pairs == 0:
        issues.append(Issue("error", "there are no preference pairs: label some pairs A or B (ties and both-bad "
                                     "votes carry no preference and are dropped)"))
    if d.identical:
        issues.append(Issue("warning", f"{d.identical} pair(s) have chosen identical to rejected: they teach nothing; "
                                       "raise the sampling temperature so the two responses differ"))
    if d.empty:
        issues.append(Issue("warning", f"{d.empty} pair(s) have an empty response: label them both bad, or raise "
                                       "max_new_tokens"))
    if d.duplicates:
        issues.append(Issue("warning", f"{d.duplicates} pair(s) repeat an earlier pair exactly and weigh double: "
                                       "deduplicate, or accept the extra weight on purpose"))
    return issues


# --- lengths -----------------------------------------------------------------------------------------------------


def token_ids(tokenizer: Any, messages: list[dict], **kwargs: Any) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return list(out["input_ids"])


def _tokenize(row: dict, tokenizer: Any) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) token ids the way TRL builds them: answers are what follows the prompt prefix."""
    prompt = token_ids(tokenizer, row["prompt"], add_generation_prompt=True)
    chosen = token_ids(tokenizer, row["prompt"] + row["chosen"])
    rejected = token_ids(tokenizer, row["prompt"] + row["rejected"])
    return prompt, chosen[len(prompt):], rejected[len(prompt):]


def _batch_ids(tokenizer: Any, conversations: list[list[dict]], **kwargs: Any) -> list[list[int]]:
    """What `_ids` gives for each conversation, in one call of the fast tokenizer: the template is rendered as text,
    then tokenized without adding special tokens, exactly as apply_chat_template(tokenize=True) does."""
    texts = tokenizer.apply_chat_template(conversations, tokenize=False, **kwargs)
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _length_batch(batch: dict, tokenizer: Any, max_length: int) -> dict:
    prompts = batch["prompt"]
    p_ids = _batch_ids(tokenizer, prompts, add_generation_prompt=True)
    c_ids = _batch_ids(tokenizer, [p + c for p, c in zip(prompts, batch["chosen"])])
    r_ids = _batch_ids(tokenizer, [p + r for p, r in zip(prompts, batch["rejected"])])
    out: dict[str, list] = {"p": [], "c": [], "r": [], "lost": []}
    for p, c, r in zip(p_ids, c_ids, r_ids):
        c, r = c[len(p):], r[len(p):]
        keep = max_length - len(p)
        out["p"].append(len(p))
        out["c"].append(len(c))
        out["r"].append(len(r))
        out["lost"].append(keep > 0 and c[:keep] == r[:keep])  # counted only where the pair is cut
    return out


def audit_lengths(rows: Dataset | list[dict], tokenizer: Any, max_length: int) -> LengthAudit:
    """How max_length cuts these pairs, and the max_length that keeps KEEP_SHARE of them whole: tokenized in
    batches (datasets.map, the fast tokenizer); above AUDIT_ROWS a seeded random sample, with its margin of error."""
    import datasets

    dataset = rows if isinstance(rows, Dataset) else Dataset.from_list(list(rows))
    dataset = dataset.select_columns(["prompt", "chosen", "rejected"])
    population = len(dataset)
    if population > AUDIT_ROWS:
        dataset = dataset.select(sorted(random.Random(AUDIT_SEED).sample(range(population), AUDIT_ROWS)))
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        measured = dataset.map(_length_batch, batched=True, batch_size=AUDIT_BATCH, keep_in_memory=True,
                               remove_columns=dataset.column_names, new_fingerprint=f"{dataset._fingerprint}-len",
                               fn_kwargs={"tokenizer": tokenizer, "max_length": max_length})
    finally:
        if bars:
            datasets.enable_progress_bars()
    columns = measured.with_format("numpy")[:]
    p, c, r, lost = (np.asarray(columns[k]) for k in ("p", "c", "r", "lost"))
    needed = p + np.maximum(c, r)
    dropped = p >= max_length
    truncated = ~dropped & (needed > max_length)
    ordered = np.sort(needed)
    keep_at = int(ordered[max(0, math.ceil(KEEP_SHARE * len(ordered)) - 1)])
    suggested = int(math.ceil(keep_at / 16) * 16)
    n = len(measured)
    margin = 0.0 if n == population else 1.96 * math.sqrt(0.25 / n * (population - n) / (population - 1))
    return LengthAudit(max_length, n, int(truncated.sum()), int((lost & truncated).sum()), int(dropped.sum()),
                       int(needed.max()), int(p.max()), int(c.max()), int(r.max()), max(suggested, 16), population,
                       margin)


def _length_issues(a: LengthAudit) -> list[Issue]:
    issues = []
    if a.dropped == a.audited:
        issues.append(Issue("error", f"every prompt fills max_length={a.max_length}: nothing is left to train on; "
                                     f"set max_length to at least {a.suggested_max_length}"))
    elif a.dropped:
        issues.append(Issue("warning", f"{a.dropped} pair(s) have a prompt of max_length={a.max_length} tokens or "
                                       f"more and are dropped: set max_length to {a.suggested_max_length}"))
    if a.lost_difference:
        issues.append(Issue("warning", f"{a.lost_difference} pair(s) lose all difference between chosen and rejected "
                                       f"once cut at max_length={a.max_length}: they train on noise; set max_length "
                                       f"to {a.suggested_max_length}"))
    if a.truncated > (1 - KEEP_SHARE) * a.audited:
        issues.append(Issue("warning", f"{a.truncated} of {a.audited} pairs get cut at max_length={a.max_length} "
                                       f"(longest {a.longest} tokens): cut answers lose the tokens that tell chosen "
                                       f"from rejected; max_length={a.suggested_max_length} keeps {KEEP_SHARE:.0%}"))
    return issues


def tokenized_preview(row: dict, tokenizer: Any) -> str:
    """One chosen example exactly as the model reads it: chat template applied, special tokens kept."""
    p, c, _ = _tokenize(row, tokenizer)
    return tokenizer.decode(p + c, skip_special_tokens=False)


def _template_issues(preview: str, tokenizer: Any) -> list[Issue]:
    issues = []
    bos = getattr(tokenizer, "bos_token", None)
    if bos and preview.startswith(bos + bos):
        issues.append(Issue("warning", f"the example starts with two BOS tokens ({bos!r}): the chat template already "
                                       "adds one, so do not add another when preparing the data"))
    for marker in ("<|im_start|>system", "<|start_header_id|>system", "<|system|>", "<<SYS>>"):
        if preview.count(marker) > 1:
            issues.append(Issue("warning", f"the system prompt appears {preview.count(marker)} times: the template "
                                           "adds a default one and the data brings its own; keep one"))
    return issues


# --- memory ------------------------------------------------------------------------------------------------------


def _cfg(model_config: Any, name: str, default: int) -> int:
    value = getattr(model_config, name, None) if not isinstance(model_config, dict) else model_config.get(name)
    return int(value) if value else default


def _context_length(model_config: Any) -> int:
    return _cfg(model_config, "max_position_embeddings", 2048)


def count_params(model_config: Any) -> tuple[int, int]:
    """(parameters, LoRA parameters per unit rank on every linear layer) of a Llama-style decoder from its config."""
    h, i = _cfg(model_config, "hidden_size", 768), _cfg(model_config, "intermediate_size", 3072)
    layers, vocab = _cfg(model_config, "num_hidden_layers", 12), _cfg(model_config, "vocab_size", 32000)
    heads = _cfg(model_config, "num_attention_heads", 12)
    head_dim = _cfg(model_config, "head_dim", h // heads)
    kv = _cfg(model_config, "num_key_value_heads", heads) * head_dim
    q = heads * head_dim
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i
    tied = getattr(model_config, "tie_word_embeddings", True) if not isinstance(model_config, dict) else \
        model_config.get("tie_word_embeddings", True)
    params = layers * per_layer + vocab * h * (1 if tied else 2)
    lora_per_rank = layers * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h))
    return params, lora_per_rank


def available_memory(device: str) -> float:
    """Bytes free on the training device now (CUDA: free device memory; CPU: MemAvailable)."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def estimate_memory(model_config: Any, config: TrainConfig, device: str | None = None) -> MemoryEstimate:
    """A rough upper estimate of training memory: a second copy of the weights, LoRA state, activations, logits."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    four_bit = cuda and config.use_4bit is not False
    weight_bytes = 0.55 if four_bit else (2.0 if cuda else 4.0)  # 4-bit nf4 with double quant ~0.55 B/param
    act_bytes = 2.0 if cuda else 4.0
    params, lora_per_rank = count_params(model_config)
    trainable = lora_per_rank * config.lora_r
    h, layers = _cfg(model_config, "hidden_size", 768), _cfg(model_config, "num_hidden_layers", 12)
    vocab = _cfg(model_config, "vocab_size", 32000)
    tokens = config.batch_size * 2 * config.max_length  # chosen and rejected go through together
    # Korthikanti et al.: ~34*h bytes per token and layer at 16 bits without recomputation (CPU runs keep them all);
    # on a GPU TRL checkpoints activations, so only each layer's input stays (h values per token and layer).
    per_token_layer = h * 34 / 2 if not cuda else h
    gb = 1024 ** 3
    breakdown = {
        "weights": params * weight_bytes / gb,
        "lora+adam": trainable * 16 / gb,  # fp32 weight, grad and two Adam moments
        "activations": tokens * layers * per_token_layer * act_bytes / gb,
        "logits": tokens * vocab * 4 * 3 / gb,  # fp32 logits, log-softmax and its gradient
    }
    total = sum(breakdown.values())
    return MemoryEstimate(params, trainable, weight_bytes, total, available_memory(device) / gb, device,
                          {k: round(v, 4) for k, v in breakdown.items()})


def _memory_issues(m: MemoryEstimate, config: TrainConfig) -> list[Issue]:
    if m.total_gb <= MEMORY_HEADROOM * m.available_gb:
        return []
    fixes = (f"lower batch_size (now {config.batch_size}) and raise gradient_accumulation_steps to keep the "
             f"effective batch, lower max_length (now {config.max_length})")
    if m.device.startswith("cuda") and config.use_4bit is False:
        fixes += ", or allow 4-bit (use_4bit=None)"
    return [Issue("warning", f"training needs about {m.total_gb:.1f} GB but only {m.available_gb:.1f} GB is free on "
                             f"{m.device}: it will likely run out of memory; {fixes}")]


# --- hyperparameters ---------------------------------------------------------------------------------------------


def scaled_defaults(params: int, lora: bool = True) -> TrainConfig:
    """TRL's defaults (beta 0.1, sigmoid loss) with learning rate and batch scaled to model size and mode."""
    if lora:
        lr = 5e-4 if params < TINY_PARAMS else (2e-4 if params < LARGE_PARAMS else 5e-5)
    else:
        lr = 1e-5 if params < TINY_PARAMS else (5e-6 if params < LARGE_PARAMS else 5e-7)
    batch = 8 if params < LARGE_PARAMS else 2
    rank = 16 if params < LARGE_PARAMS else 32
    return replace(TrainConfig(), learning_rate=lr, batch_size=batch).with_rank(rank)


def _lr_range(params: int) -> tuple[float, float]:
    """Sane LoRA learning rates for the model size (full fine-tuning would be ~100x lower)."""
    if params < TINY_PARAMS:
        return 1e-5, 5e-3
    if params < LARGE_PARAMS:
        return 5e-6, 1e-3
    return 1e-6, 3e-4


def check_hyperparameters(config: TrainConfig, n_pairs: int, params: int, context_length: int,
                          longest: int | None = None) -> list[Issue]:
    """Errors for settings that cannot work, warnings for ones that probably will not; each names the fix.

    `longest`: tokens of the longest pair, when audited; a max_length beyond the context only matters if pairs are.
    """
    issues = []
    try:
        if n_pairs:  # no pairs at all is the data report's error
            config.check_pairs(n_pairs)
    except ConfigError as exc:
        issues.append(Issue("error", str(exc)))
    low, high = _lr_range(params)
    if 0 < config.learning_rate and not low <= config.learning_rate <= high:
        issues.append(Issue("warning", f"learning_rate={config.learning_rate:g} is outside {low:g}..{high:g}, the sane "
                                       f"range for LoRA on a {params / 1e6:.0f}M-parameter model: try "
                                       f"{scaled_defaults(params).learning_rate:g}"))
    if n_pairs and config.batch_size <= n_pairs:
        steps = math.ceil(n_pairs / (config.batch_size * config.gradient_accumulation_steps)) * config.num_epochs
        if steps < 5:
            issues.append(Issue("warning", f"only {steps:g} optimizer step(s): too few to move the model; lower "
                                           "batch_size or gradient_accumulation_steps, or label more pairs"))
        if config.num_epochs > 3 and n_pairs < 500:
            issues.append(Issue("warning", f"{config.num_epochs:g} epochs over {n_pairs} pairs will likely overfit: "
                                           "use 1-3 epochs, or label more pairs"))
    if config.beta > 1.0:
        issues.append(Issue("warning", f"beta={config.beta:g} keeps the model very close to the base: DPO barely "
                                       "moves it; 0.1 is the usual start"))
    if config.max_length > context_length and (longest is None or longest > context_length):
        issues.append(Issue("warning", f"max_length={config.max_length} is beyond the model's context of "
                                       f"{context_length} tokens: set max_length to {context_length} or less"))
    if config.use_4bit:
        import torch

        if not torch.cuda.is_available():
            issues.append(Issue("warning", "use_4bit=True but there is no CUDA device: 4-bit needs CUDA, training "
                                           "will run in fp32; set use_4bit=None to silence this"))
    return issues
