"""A selection change drops the queued pairs it would have chosen otherwise, never a chat sent to labelling."""

from __future__ import annotations

from prefapp.config import SamplingConfig
from prefapp.labeling.active import Scorer, Selection
from prefapp.labeling.pair_queue import PairQueue, ReadyPair
from prefapp.store import Store

SAMPLING = SamplingConfig(max_new_tokens=8)


def test_a_selection_change_keeps_a_chat_sent_to_labelling(demo_policy, tmp_path):
    with Store(tmp_path / "q.duckdb") as store:
        store.add_prompts(["What is 1 + 1?", "Name a colour."], source="test")
        queue = PairQueue(demo_policy, store, SAMPLING, target=0)  # never generates: only what is put in
        chosen, sent = store.next_prompt(), store.next_prompt()
        queue.put_first(ReadyPair(chosen, "1 + 1 = 2.", "Two.", None, SAMPLING, {"selection": "coverage"}))
        queue.put_first(ReadyPair(sent, "Blue.", "Red.", None, SAMPLING))  # a chat sent to labelling: no origin
        assert queue.set_selection(Selection("active", 0.3, 2, Scorer("round-1", 1, 0.1))) == 1
        assert queue.take().first == "Blue." and queue.take() is None
        queue.put_first(ReadyPair(sent, "Blue.", "Red.", None, SAMPLING))
        assert queue.configure(None, SamplingConfig(max_new_tokens=16)) == 1  # new sampling: nothing of the old kept
        assert queue.take() is None
