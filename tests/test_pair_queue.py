"""The background pair queue on the real demo model and a real DuckDB file."""

from __future__ import annotations

import pytest

from prefapp.config import ConfigError, SamplingConfig
from prefapp.labeling.pair_queue import PairQueue
from prefapp.store import Store

SAMPLING = SamplingConfig(max_new_tokens=8)  # short replies: the queue's logic, not the model, is under test


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "q.duckdb") as s:
        s.add_prompts([f"What is {i} + {i}?" for i in range(12)], source="test")
        yield s


@pytest.fixture
def queue(demo_policy, store):
    q = PairQueue(demo_policy, store, SAMPLING, target=4, batch_size=2, seed=0)
    yield q
    q.stop()


def test_fills_in_batches_to_the_target_with_distinct_least_served_prompts(queue, store):
    assert queue.take() is None  # not started: empty, and take() never blocks
    queue.start()
    assert queue.wait_ready(4, timeout=120)
    status = queue.status()
    assert (status.ready, status.generated, status.last_batch_pairs, status.error) == (4, 4, 2, None)
    pairs = [queue.take() for _ in range(4)]
    assert len({p.prompt.id for p in pairs}) == 4  # queued pairs count as served: no prompt twice
    assert all(p.first and p.second and p.adapter is None and p.sampling == SAMPLING for p in pairs)
    assert store.pair_count() == 0  # nothing is recorded until a pair is served by the service
    assert queue.wait_ready(4, timeout=120)  # refilled after being drained
    assert {p.prompt.id for p in pairs}.isdisjoint({queue.take().prompt.id for _ in range(4)})


def test_a_generator_or_sampling_change_discards_the_queued_pairs(queue):
    queue.start()
    assert queue.wait_ready(4, timeout=120)
    assert queue.configure(None, SAMPLING) == 0  # the same settings change nothing
    new = SamplingConfig(temperature=0.7, max_new_tokens=8)
    assert queue.configure(None, new) == 4
    assert queue.status().discarded >= 4
    assert queue.wait_ready(4, timeout=120)
    assert all(queue.take().sampling == new for _ in range(4))


def test_an_empty_queue_mid_batch_is_waited_for(queue):
    queue.start()
    pair = queue.take(wait_s=120)  # the first batch is generating: wait for it instead of returning None
    assert pair is not None


def test_bad_settings_name_the_fix(demo_policy, store):
    with pytest.raises(ConfigError, match="batch_size=9"):
        PairQueue(demo_policy, store, SAMPLING, target=4, batch_size=9)
    idle = PairQueue(demo_policy, store, SAMPLING, target=0)  # target 0: a queue that never generates
    idle.start()
    assert not idle.wait_ready(1, timeout=0.5) and idle.status().generated == 0
    idle.stop()
