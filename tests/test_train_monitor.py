"""Live training warnings: synthetic logged histories with one known problem each, and a healthy one with none."""

from __future__ import annotations

import math

import pytest

from prefapp.training.monitor import diagnose


def healthy(steps: int = 40) -> list[dict]:
    """Loss falls gently, chosen rises, rejected falls, accuracy climbs to ~0.8, grad norm steady."""
    return [{"step": s, "loss": 0.69 - 0.005 * s, "grad_norm": 1.0 + 0.1 * (s % 3),
             "rewards/chosen": 0.01 * s, "rewards/rejected": -0.02 * s, "rewards/margins": 0.03 * s,
             "rewards/accuracies": min(0.5 + 0.02 * s, 0.85)} for s in range(1, steps + 1)]


def with_rows(rows: list[dict], **changes: object) -> list[dict]:
    return [{**row, **{k: (v(row) if callable(v) else v) for k, v in changes.items()}} for row in rows]


def kinds(history: list[dict], total: int = 40) -> list[str]:
    return [w.kind for w in diagnose(history, total)]


def test_a_healthy_run_has_no_warnings_at_any_step():
    history = healthy()
    assert [kinds(history[:n]) for n in range(1, len(history) + 1)] == [[]] * len(history)  # as the trainer calls it


@pytest.mark.parametrize("history, kind, fix", [
    (healthy(10) + [{**healthy(11)[-1], "loss": math.nan}], "nan", "learning_rate"),
    (healthy(10) + [{**healthy(11)[-1], "grad_norm": 50.0}], "exploding_grads", "learning_rate"),
    (with_rows(healthy(6), loss=0.001, **{"rewards/accuracies": 1.0}), "overfitting", "fewer epochs"),
    (with_rows(healthy(20), **{"rewards/chosen": lambda r: -0.05 * r["step"],
                               "rewards/rejected": lambda r: -0.08 * r["step"]}), "rewards_falling", "beta"),
    (with_rows(healthy(20), **{"rewards/accuracies": lambda r: 0.5 if r["step"] % 2 else 0.45}),
     "accuracy_stuck", "labels"),
], ids=["nan", "exploding", "overfitting", "rewards-falling", "accuracy-stuck"])
def test_each_problem_is_named_with_a_fix(history, kind, fix):
    warnings = diagnose(history, 40)
    assert kind in [w.kind for w in warnings]
    assert fix in next(w for w in warnings if w.kind == kind).message


def test_saturation_late_in_a_run_is_not_called_overfitting():
    late = healthy(40)[:30] + with_rows(healthy(40)[30:], loss=0.001, **{"rewards/accuracies": 1.0})
    assert "overfitting" not in kinds(late)


def test_too_short_a_history_says_nothing_about_trends():
    short = with_rows(healthy(6), **{"rewards/accuracies": 0.5, "rewards/chosen": -1.0, "rewards/rejected": -1.0})
    assert kinds(short) == []


def test_the_trainer_reports_each_kind_once_while_its_figures_change():
    from prefapp.training.progress import _Reporter

    reporter = _Reporter(None, started=0.0)
    reporter.total_steps = 40
    for row in with_rows(healthy(30), **{"rewards/chosen": lambda r: -0.05 * r["step"],
                                         "rewards/rejected": lambda r: -0.08 * r["step"]}):
        reporter.record(row["step"], row)
    assert len(reporter.warnings) == 1 and reporter.warnings[0].startswith("both rewards are falling")
