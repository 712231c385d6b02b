"""Plain-language warnings while DPO trains: read the logged rows, say what looks wrong and what to try.

Each check looks at the history of logged rows (one per optimizer step: loss, grad_norm, rewards/chosen,
rewards/rejected, rewards/margins, rewards/accuracies) and returns at most one `TrainWarning`. Per-step DPO metrics
are noisy on small batches, so the trend checks compare window means rather than single steps. The trainer calls
`diagnose` after every step, so each check reads only the newest rows (constant work per step, however long the
run); a warning, once raised, is kept by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import fmean, median

WINDOW = 8  # steps averaged by the trend checks: enough to smooth batch noise on a few hundred pairs
NORM_HISTORY = 50  # grad norms the spike check compares against: recent enough to follow a schedule
EXPLODING_FACTOR = 10.0  # a grad norm this many times the running median is a spike, not noise
EXPLODING_ABSOLUTE = 1e3  # beyond this any run is in trouble, whatever came before


@dataclass(frozen=True)
class TrainWarning:
    kind: str  # "nan", "exploding_grads", "overfitting", "rewards_falling", "accuracy_stuck"
    step: int  # the step at which it was first seen
    message: str  # what is happening and what to try


def diagnose(history: list[dict], total_steps: int) -> list[TrainWarning]:
    """Every warning the history supports right now, in a fixed order (worst first)."""
    checks = (_nan, _exploding, _overfitting, _rewards_falling, _accuracy_stuck)
    found = (check(history, total_steps) for check in checks)
    return [w for w in found if w is not None]


def _values(history: list[dict], key: str) -> list[float]:
    return [float(row[key]) for row in history if key in row]


def _nan(history: list[dict], total_steps: int) -> TrainWarning | None:
    row = history[-1] if history else {}
    bad = [k for k in ("loss", "grad_norm") if k in row and not math.isfinite(float(row[k]))]
    if not bad:
        return None
    return TrainWarning("nan", int(row["step"]), (
        f"{' and '.join(bad)} became NaN/inf at step {row['step']}: the update diverged. Lower learning_rate "
        "(e.g. by 10x); on a GPU prefer bf16 over fp16; check the data for empty or huge answers."
    ))


def _exploding(history: list[dict], total_steps: int) -> TrainWarning | None:
    norms = [float(r["grad_norm"]) for r in history[-NORM_HISTORY - 1:] if "grad_norm" in r]
    if not norms or not math.isfinite(norms[-1]):
        return None
    norm, earlier = norms[-1], [n for n in norms[:-1] if math.isfinite(n)]
    spike = len(earlier) >= 3 and norm > EXPLODING_FACTOR * max(median(earlier), 1e-8)
    if norm <= EXPLODING_ABSOLUTE and not spike:
        return None
    step = int(history[-1]["step"])
    return TrainWarning("exploding_grads", step, (
        f"gradient norm {norm:.3g} at step {step} is far above the run so far: gradients are exploding. "
        "Lower learning_rate, add warmup, or keep max_grad_norm clipping at 1.0."
    ))


def _overfitting(history: list[dict], total_steps: int) -> TrainWarning | None:
    early = max(3, int(0.3 * total_steps))  # saturating within the first 30% of the run is too early
    last = history[-3:]
    if len(last) < 3 or last[-1]["step"] > early:
        return None
    saturated = [r.get("loss", 1.0) < 0.02 or (r.get("rewards/accuracies", 0.0) >= 1.0 and r.get("loss", 1.0) < 0.1)
                 for r in last]
    if not all(saturated):
        return None
    step = int(last[-1]["step"])
    return TrainWarning("overfitting", step, (
        f"loss near zero with accuracy 1.0 by step {step} of {total_steps}: the adapter is memorizing "
        "the pairs. Train fewer epochs, lower learning_rate, raise beta, or label more (and more varied) pairs."
    ))


def _rewards_falling(history: list[dict], total_steps: int) -> TrainWarning | None:
    recent = history[-2 * WINDOW:]
    chosen, rejected = _values(recent, "rewards/chosen"), _values(recent, "rewards/rejected")
    if len(chosen) < 2 * WINDOW or len(rejected) < 2 * WINDOW:
        return None
    recent_c, recent_r = fmean(chosen[-WINDOW:]), fmean(rejected[-WINDOW:])
    before_c, before_r = fmean(chosen[-2 * WINDOW:-WINDOW]), fmean(rejected[-2 * WINDOW:-WINDOW])
    if recent_c < before_c and recent_r < before_r and recent_c < 0:
        return TrainWarning("rewards_falling", int(history[-1]["step"]), (
            f"both rewards are falling (chosen {recent_c:.3f}, rejected {recent_r:.3f}): DPO is pushing the chosen "
            "answers down too, only less than the rejected ones. Raise beta, lower learning_rate, or try "
            "loss_type='apo_zero' (which raises chosen explicitly); check chosen answers are really better."
        ))
    return None


def _accuracy_stuck(history: list[dict], total_steps: int) -> TrainWarning | None:
    accuracies = _values(history[-2 * WINDOW:], "rewards/accuracies")
    if len(accuracies) < 2 * WINDOW or len(history) < int(0.3 * total_steps):
        return None
    recent = fmean(accuracies)
    if 0.4 <= recent <= 0.6:
        return TrainWarning("accuracy_stuck", int(history[-1]["step"]), (
            f"reward accuracy has stayed near 0.5 ({recent:.2f} over the last {2 * WINDOW} steps): the model cannot "
            "tell chosen from rejected. Check the labels (run preflight: identical pairs, truncation), raise "
            "learning_rate, or lower beta."
        ))
    return None
