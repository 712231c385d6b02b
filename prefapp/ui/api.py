"""The named API (gradio_client: `Client(url).predict(..., api_name="/vote")`): one function per intent, each with
its role declared where it is registered. The same service calls the tabs make; errors come back as messages.

No `from __future__ import annotations` here: gradio reads these functions' type hints at runtime
(`get_return_types` uses the raw annotation, so a string annotation would turn a 4-tuple into one output).
"""

import functools
import html
from dataclasses import asdict
from typing import Any, Callable, Literal

import gradio as gr

from prefapp.config import Choice, TrainConfig
from prefapp.hosting.params import check_call
from prefapp.service import PrefService
from prefapp.ui.access import ADMIN, ANNOTATOR
from prefapp.ui.access import api as register
from prefapp.ui.chat_tab import set_generator_message
from prefapp.ui.common import user_errors
from prefapp.ui.data_tab import export_message
from prefapp.ui.evaluate_tab import EVAL_CONCURRENCY
from prefapp.ui.label_tab import LABEL_CONCURRENCY
from prefapp.ui.train_tab import data_options, start_message, status_dict

CONFIRM_API = "To override: call /set_generator again with confirm=true (recorded)."
API_NAMES = ("next_pair", "vote", "undo", "add_prompts", "import_prompts", "import_pairs", "quality", "export",
             "train", "train_status", "add_round", "chat", "set_generator", "eval_next", "eval_vote",
             "leaderboard", "set_selection", "rate_reply",
             "import_eval_prompts")


def checked(fn: Callable) -> Callable:
    """`fn` with its parameters checked against its type hints (refused, never coerced: prefapp.hosting.params) and
    its error messages in plain text: the tabs' helpers escape them for toasts, which gradio renders as HTML, but an
    API caller reads text."""
    @functools.wraps(fn)
    def endpoint(*args: Any, **kwargs: Any) -> Any:
        try:
            args, kwargs = check_call(fn, args, kwargs)
            return fn(*args, **kwargs)
        except gr.Error as exc:
            raise gr.Error(html.unescape(exc.message), print_exception=False) from exc
        except ValueError as exc:  # ConfigError included
            raise gr.Error(str(exc), print_exception=False) from exc
    return endpoint


def api(fn: Callable, **kwargs: Any) -> Any:
    """Register `fn` as a named endpoint, checked (see `checked`), with its role."""
    return register(checked(fn), **kwargs)


class Api:
    """The endpoints, each registered with who may call it."""

    def __init__(self, service: PrefService) -> None:
        self.service = service

    def events(self) -> None:
        # Labelling calls share the Label tab's concurrency group: one annotator waiting on the model must not
        # hold up the others.
        api(self.next_pair, api_name="next_pair", role=ANNOTATOR, **LABEL_CONCURRENCY)
        api(self.vote, api_name="vote", role=ANNOTATOR, **LABEL_CONCURRENCY)
        api(self.undo, api_name="undo", role=ANNOTATOR, **LABEL_CONCURRENCY)
        api(self.add_prompts, api_name="add_prompts", role=ADMIN)
        api(self.import_prompts, api_name="import_prompts", role=ADMIN)
        api(self.import_pairs, api_name="import_pairs", role=ADMIN)
        api(self.quality, api_name="quality", role=ADMIN)
        api(self.export, api_name="export", role=ADMIN)
        api(self.train, api_name="train", role=ADMIN)
        api(self.train_status, api_name="train_status", role=ADMIN)
        api(self.add_round, api_name="add_round", role=ADMIN)
        api(self.chat, api_name="chat", role=ANNOTATOR)
        api(self.set_generator, api_name="set_generator", role=ADMIN)
        api(self.eval_next, api_name="eval_next", role=ANNOTATOR, **EVAL_CONCURRENCY)
        api(self.eval_vote, api_name="eval_vote", role=ANNOTATOR, **EVAL_CONCURRENCY)
        api(self.leaderboard, api_name="leaderboard", role=ANNOTATOR)
        api(self.set_selection, api_name="set_selection", role=ADMIN)
        api(self.rate_reply, api_name="rate_reply", role=ANNOTATOR)
        api(self.import_eval_prompts, api_name="import_eval_prompts", role=ADMIN)

    def next_pair(self, annotator: str) -> tuple[str, str, str, str]:
        """Two new responses to the least-labelled prompt for `annotator`: (pair_id, prompt, response_a, response_b)."""
        with user_errors():
            pair = self.service.next_pair(annotator)
        return pair.pair_id, pair.prompt, pair.response_a, pair.response_b

    def vote(self, pair_id: str, choice: Choice, annotator: str) -> str:
        """Record `annotator`'s choice for a pair (A, B, tie or both_bad); a repeated vote changes nothing."""
        with user_errors():
            return self.service.vote(pair_id, choice, annotator).message

    def undo(self, annotator: str) -> tuple[str, str, str, str]:
        """Take back `annotator`'s last vote: the pair it was on, to vote again (pair_id, prompt, response_a,
        response_b)."""
        with user_errors():
            pair = self.service.undo(annotator)
        if pair is None:
            raise gr.Error(f"{annotator.strip() or 'This annotator'} has no vote to undo.", print_exception=False)
        return pair.pair_id, pair.prompt, pair.response_a, pair.response_b

    def add_prompts(self, text: str) -> str:
        """Add prompts, one per line; duplicates and blank lines are skipped and counted."""
        with user_errors():
            return self.service.add_typed_prompts(text)

    def import_prompts(self, source: str, column: str = "", split: str = "train") -> str:
        """Import prompts from a file under the data folder (.txt, .csv, .jsonl, .parquet, a saved dataset) or a
        Hub dataset name; `column` picks the prompt column (empty: guessed)."""
        with user_errors():
            return self.service.import_prompt_source(source.strip(), column.strip() or None, split or "train")

    def import_pairs(self, source: str, format: str = "auto", split: str = "train") -> dict:
        """Import preference pairs (or KTO-shape labelled completions) from a file under the data folder (.json,
        .jsonl, .csv, .parquet, a saved dataset) or a Hub dataset id; `format`: auto (detected) or a format name.
        Returns the counts: source, format, kind, rows, added, duplicates, skipped (by reason), skipped_examples."""
        with user_errors():
            return self.service.import_preferences(source.strip(), split or "train", format or "auto").as_dict()

    def quality(self) -> dict:
        """The Quality tab's figures: per-annotator stats, agreement (percent, Fleiss' and Cohen's kappa), probes."""
        return asdict(self.service.quality())

    def export(self, name: str = "", push_to: str = "", disagreement: str = "majority", both_bad: str = "drop",
               written: str = "use", sources: Literal["votes", "imported", "both"] = "votes",
               imported_share: float = 0.0, eval_votes: bool = False) -> str:
        """Export the votes as a datasets dataset (save_to_disk + Parquet), resolving disagreements (majority, drop,
        all), both-bad (drop, written) and human-written responses (use, ignore); `sources`: votes, imported or
        both, imported pairs capped at `imported_share` of the rows (0: no cap); `eval_votes`: also the decided eval
        votes (origin 'eval'; off by default); optionally push it to the Hub."""
        return export_message(self.service, name, push_to, disagreement, both_bad, written, sources, imported_share,
                              eval_votes)

    def train(
        self, beta: float = TrainConfig.beta, learning_rate: float = TrainConfig.learning_rate,
        num_epochs: float = TrainConfig.num_epochs, batch_size: int = TrainConfig.batch_size,
        max_length: int = TrainConfig.max_length, lora_r: int = TrainConfig.lora_r,
        loss_type: str = TrainConfig.loss_type, precompute_ref_log_probs: bool = False,
        save_steps: int = TrainConfig.save_steps, sources: Literal["votes", "imported", "both"] = "votes",
        imported_share: float = 0.0, method: Literal["dpo", "kto"] = "dpo", eval_votes: bool = False,
    ) -> str:
        """Export the current preferences (`sources`: votes, imported pairs or both, imported capped at
        `imported_share` of the rows, 0: no cap; `eval_votes`: also the decided eval votes, off by default) and start
        a LoRA round in the background: DPO on pairs, or KTO (`method`) on every labelled completion; poll
        /train_status."""
        return start_message(self.service, beta, learning_rate, num_epochs, batch_size, max_length, lora_r,
                             loss_type, precompute_ref_log_probs, save_steps, method,
                             options=data_options(sources, imported_share, eval_votes))

    def add_round(self, adapter_dir: str) -> str:
        """Register a LoRA adapter folder trained elsewhere (under the data folder) as the next finished round, after
        checking it was trained on this app's model."""
        with user_errors():
            rnd = self.service.add_round(adapter_dir.strip())
        return f"Round {rnd.id} added from {rnd.adapter_path}."

    def train_status(self) -> dict:
        """The latest training progress: state, step, total_steps, epoch, elapsed_s, eta_s, metrics, message."""
        service = self.service
        return status_dict(service.training_status(), service.training_running(), service.rounds())

    def chat(self, message: str) -> tuple[str, str]:
        """One message to the base and the aligned model: (base_reply, aligned_reply; '' when no round is trained)."""
        with user_errors():
            base, aligned = self.service.chat([], [], message)
        return base, aligned or ""

    def set_selection(self, mode: Literal["coverage", "active"], coverage_share: float = 0.3) -> str:
        """Serve least-labelled prompts (coverage) or the pairs the latest round is least sure of (active), with
        `coverage_share` of pairs still chosen by coverage."""
        with user_errors():
            return self.service.set_selection(mode, coverage_share)

    def rate_reply(self, message: str, reply: str, good: bool, annotator: str,
                   which: Literal["base", "aligned"] = "base") -> str:
        """Thumbs up (good=true) or down on a reply of the base or the aligned model to `message`; stored as a
        labelled completion that KTO rounds train on."""
        with user_errors():
            return self.service.rate_reply([{"role": "user", "content": message}], reply, good, annotator, which)

    def set_generator(self, which: str, confirm: bool = False) -> str:
        """Make a finished round (e.g. 'round-1' or '1') or 'base' the model that writes new pairs, through the
        promotion gate: a round judged worse or flagged (or not working, with PREFAPP_REQUIRE_WORKING) is refused with
        its verdict and checks unless `confirm` is true (recorded as an override)."""
        return set_generator_message(self.service, which, confirm, how_to_confirm=CONFIRM_API)

    def eval_next(self, annotator: str) -> tuple[str, str, str, str]:
        """The next blind eval pair: (pair_id, prompt, response_a, response_b); who wrote which side stays hidden."""
        with user_errors():
            pair = self.service.eval_next(annotator)
        return pair.pair_id, pair.prompt, pair.response_a, pair.response_b

    def eval_vote(self, pair_id: str, choice: Choice, annotator: str) -> str:
        """Record a blind eval vote; the message reveals which policy wrote each side and the verdict so far."""
        with user_errors():
            return self.service.eval_vote(pair_id, choice, annotator).message

    def leaderboard(self) -> dict:
        """The current comparison's verdict (wins, losses, ties, win_rate, ci_low, ci_high, lc_win_rate, verdict)
        and the Bradley-Terry leaderboard of base and every round (`leaderboard`: policy, strength, ci_low, ci_high)."""
        with user_errors():
            return self.service.eval_report().to_dict()

    def import_eval_prompts(self, source: str, column: str = "", split: str = "train") -> str:
        """Import held-out eval prompts, never served for labelling, from a file under the data folder or a Hub
        dataset (the formats of /import_prompts); prompts already used for labelling are skipped and counted."""
        with user_errors():
            return self.service.import_eval_prompts(source.strip(), column.strip() or None, split or "train")
