"""The per-click reads (prefapp.store.picks) against full recounts, through long random runs of what annotators do:
picks at several overlaps, votes, undos, probes, new pairs, on pairs spread over two years so the overlap pick's
windows, pages and floors are all exercised, and a floor is lowered by an old pair's first vote or by an undo."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from prefapp.store import Store, picks
from prefapp.store.records import _now
from tests import oracle

NAMES = ("ann0", "ann1", "ann2", "Zoë")


def full_recount(store: Store) -> dict:
    """What the maintained figures must equal: counted from the tables."""
    cur = store._cur()
    levels = sorted(cur.execute("SELECT kind, n_votes, n FROM vote_levels WHERE n <> 0").fetchall())
    expected = sorted(
        cur.execute("SELECT 'pair', c, count(*) FROM (SELECT p.id, count(v.id) AS c FROM pairs p JOIN votes v "
                    "ON v.pair_id = p.id WHERE p.probe_of IS NULL GROUP BY p.id) GROUP BY c").fetchall()
        + cur.execute("SELECT 'prompt', c, count(*) FROM (SELECT prompt_id, count(*) AS c FROM votes "
                      "GROUP BY prompt_id) GROUP BY c").fetchall())
    n_pairs = cur.execute("SELECT count(*) FROM prompts q WHERE n_pairs <> "
                          "(SELECT count(*) FROM pairs p WHERE p.prompt_id = q.id)").fetchone()[0]
    return {"levels": levels == expected, "n_pairs_wrong": n_pairs}


def assert_clicks_match(store: Store) -> None:
    assert full_recount(store) == {"levels": True, "n_pairs_wrong": 0}
    for overlap in (1, 2, 3):
        assert store.labelling_progress(overlap) == oracle.labelling_progress(store, overlap)
        for name in NAMES + ("nobody",):
            pair = store.pair_for_overlap(name, overlap)
            assert (pair.id if pair else None) == oracle.pair_for_overlap(store, name, overlap), (name, overlap)


def spread_store(store: Store, seed: int, n_pairs: int = 120) -> list[str]:
    """Unvoted pairs created over two years (in random order of insertion), served to random annotators."""
    rng = random.Random(seed)
    store.add_prompts([f"Question {i}?" for i in range(30)], source="test")
    ids = [store.add_pair(store.get_prompt(rng.randint(1, 30)), f"a{i}", f"b{i}", swapped=False, model_id="m",
                          adapter_id=None, sampling={}, served_to=rng.choice(NAMES + (None,))).id
           for i in range(n_pairs)]
    for pair_id in ids:  # before any vote or pick: no floor exists yet
        store._cur().execute("UPDATE pairs SET created_at = ? WHERE id = ?",
                             [_now() - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60)), pair_id])
    return ids


@pytest.mark.parametrize("seed, page", [(0, picks.PAGE), (1, picks.PAGE), (2, 2)])
def test_random_clicks_keep_every_figure_equal_to_a_recount(tmp_path, monkeypatch, seed, page):
    monkeypatch.setattr(picks, "PAGE", page)  # 2: the pick reads many pages of candidates the annotator voted on
    rng = random.Random(seed)
    with Store(tmp_path / "c.duckdb") as store:
        ids = spread_store(store, seed)
        for step in range(160):
            name, overlap = rng.choice(NAMES), rng.choice((2, 2, 3))
            action = rng.random()
            if action < 0.45:  # the overlap pick, else an unvoted pair, as a click does
                pair = store.pair_for_overlap(name, overlap)
                pair_id = pair.id if pair else rng.choice(ids)
                store.record_vote(pair_id, rng.choice(oracle.CHOICES), name)
            elif action < 0.7:  # a first vote on any pair, often far older than the floors
                store.record_vote(rng.choice(ids), rng.choice(oracle.CHOICES), name)
            elif action < 0.85:
                store.undo_last_vote(name)
            elif action < 0.93:
                original = store.probe_candidate(name, rng)
                if original:
                    store.record_vote(store.add_probe(original, name).id, "A", name)
            else:
                ids.append(store.add_pair(store.get_prompt(rng.randint(1, 30)), "x", "y", swapped=True,
                                          model_id="m", adapter_id=None, sampling={}, served_to=name).id)
            if step % 20 == 19:
                assert_clicks_match(store)
        assert_clicks_match(store)
        store.recount()  # resets the floors and rebuilds the levels: the same answers
        assert_clicks_match(store)


def test_an_old_pair_voted_or_an_undo_lowers_the_floor(tmp_path):
    with Store(tmp_path / "f.duckdb") as store:
        old, mid, new = spread_store(store, 0, n_pairs=3)
        cur = store._cur()
        for pair_id, days in ((old, 300), (mid, 200), (new, 100)):
            cur.execute("UPDATE pairs SET created_at = ?, served_to = NULL WHERE id = ?",
                        [_now() - timedelta(days=days), pair_id])
        store.record_vote(new, "A", "ann1")
        assert store.pair_for_overlap("ann0", 2).id == new  # ann0's floor rises to `new`
        store.record_vote(new, "B", "ann0")
        assert store.pair_for_overlap("ann0", 2) is None
        store.record_vote(old, "A", "ann2")  # an older pair opens: below ann0's floor
        assert store.pair_for_overlap("ann0", 2).id == old
        store.record_vote(old, "A", "ann0")
        store.record_vote(mid, "tie", "ann0")
        assert store.pair_for_overlap("ann0", 2) is None  # `mid` is ann0's own
        store.undo_last_vote("ann0")  # `mid` unvoted: not open
        store.undo_last_vote("ann0")  # `old` is open to ann0 again
        assert store.pair_for_overlap("ann0", 2).id == old
        assert store.pair_for_overlap("ann0", 3).id == old


def test_refill_pick_takes_the_least_served_counting_pending_and_breaks_ties_at_random(tmp_path):
    with Store(tmp_path / "r.duckdb") as store:
        store.add_prompts([f"q{i}" for i in range(6)], source="test")
        for prompt_id, served in ((1, 3), (2, 1), (3, 1), (4, 0), (5, 0), (6, 2)):
            for _ in range(served):
                store.add_pair(store.get_prompt(prompt_id), "a", "b", swapped=False, model_id="m", adapter_id=None,
                               sampling={}, served_to=None)
        store.add_probe(store.add_pair(store.get_prompt(6), "a", "b", swapped=False, model_id="m",
                                       adapter_id=None, sampling={}, served_to=None).id, "ann")  # probes count too
        rng = random.Random(0)
        assert [p.id for p in store.least_served_prompts(2, rng=rng)] in ([4, 5], [5, 4])
        assert {p.id for p in store.least_served_prompts(2, {4: 2}, rng)} <= {5, 2, 3}
        assert store.least_served_prompts(2, {4: 2}, rng)[0].id == 5
        picks = {tuple(p.id for p in store.least_served_prompts(3, {4: 1, 5: 1}, rng, exclude={2}))
                 for _ in range(40)}
        assert {ids[0] for ids in picks} == {3, 4, 5} and all(sorted(ids) == [3, 4, 5] for ids in picks)
        everything = store.least_served_prompts(10, rng=rng)
        served = dict(store._cur().execute("SELECT prompt_id, count(*) FROM pairs GROUP BY ALL").fetchall())
        assert [served.get(p.id, 0) for p in everything] == sorted(served.get(i, 0) for i in range(1, 7))
        assert store.least_served_prompts(0) == [] and store.least_served_prompts(3, exclude={1, 2, 3, 4, 5, 6}) == []


def test_repeat_probe_draws_only_qualifying_votes_and_each_of_them(tmp_path):
    with Store(tmp_path / "p.duckdb") as store:
        oracle.random_store(store, seed=3)
        cur = store._cur()
        for name in ("ann0", "Zoë", "nobody"):
            qualifying = {pair_id for (pair_id,) in cur.execute(
                "SELECT v.pair_id FROM votes v JOIN pairs p ON p.id = v.pair_id WHERE v.annotator = ? "
                "AND p.probe_of IS NULL AND NOT EXISTS (SELECT 1 FROM pairs q WHERE q.probe_of = v.pair_id "
                "AND q.served_to = ?)", [name, name]).fetchall()}
            rng = random.Random(0)
            drawn = {store.probe_candidate(name, rng) for _ in range(300)}
            assert drawn == (qualifying or {None}), name  # every qualifying vote comes up, nothing else


def reference_least_served(store: Store, limit: int, pending: dict, rng: random.Random, exclude: set) -> list[int]:
    """The refill pick as it was written before numpy drew its ties: one rng.random() per prompt, in Python."""
    rows = store._cur().execute("SELECT p.id, count(pr.id) FROM prompts p LEFT JOIN pairs pr ON pr.prompt_id = p.id "
                                "GROUP BY p.id ORDER BY p.id").fetchall()
    keyed = [(n + pending.get(pid, 0), rng.random(), pid) for pid, n in rows if pid not in exclude]
    return [pid for _, _, pid in sorted(keyed)[:limit]]


@pytest.mark.parametrize("seed", range(4))
def test_refill_pick_is_the_old_pick_draw_for_draw(tmp_path, seed):
    rng = random.Random(seed)
    with Store(tmp_path / "o.duckdb") as store:
        spread_store(store, seed, n_pairs=60)
        for _ in range(10):
            pending = {rng.randint(1, 35): rng.randint(1, 3) for _ in range(rng.randint(0, 5))}  # 31-35: no such prompt
            exclude = {rng.randint(1, 30) for _ in range(rng.randint(0, 4))}
            limit, state = rng.randint(0, 32), rng.getstate()
            mine = [p.id for p in store.least_served_prompts(limit, pending, rng, exclude)]
            after, old = rng.getstate(), random.Random()
            old.setstate(state)
            assert mine == reference_least_served(store, limit, pending, old, exclude)
            assert after == old.getstate()  # the caller's rng moved on exactly as before


def test_a_repeated_vote_writes_nothing_and_first_counters_are_added(tmp_path):
    """record_vote inserts first and lets the UNIQUE (pair_id, annotator) index refuse a repeat: the repeat gets the
    first vote back and leaves every figure as it was; counters seen for the first time are inserted, not lost."""
    with Store(tmp_path / "r.duckdb") as store:
        ids = spread_store(store, 3, n_pairs=4)
        cur = store._cur()

        def figures() -> list:
            return [cur.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
                    for table in ("votes", "vote_tallies", "vote_levels", "overlap_floors")]

        first = store.record_vote(ids[0], "A", "ann0")
        before = figures()
        again = store.record_vote(ids[0], "B", "ann0", written="a better answer")
        assert (again.vote, again.created) == (first.vote, False)
        assert figures() == before and store.vote_notes() == {}
        for pair_id, choice, name in ((ids[1], "tie", "ann0"), (ids[0], "both_bad", "Zoë"), (ids[2], "A", "ann0")):
            assert store.record_vote(pair_id, choice, name).created  # the store takes votes after a refused repeat
        tallies = cur.execute("SELECT annotator, choice, n FROM vote_tallies WHERE n <> 0 ORDER BY ALL").fetchall()
        counted = cur.execute("SELECT annotator, choice, count(*) FROM votes GROUP BY ALL ORDER BY ALL").fetchall()
        assert tallies == counted
        assert_clicks_match(store)
