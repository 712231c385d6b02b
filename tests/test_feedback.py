"""Labelled completions on a real DuckDB file: imports with dedup, chat ratings, feedback derived from votes."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefapp.store import Store

SAMPLING = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 64}
Q = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "prefapp.duckdb") as s:
        yield s


def test_add_completions_dedups_and_reports_invalid_rows(store):
    rows = [
        (Q, "4", True, {"dataset": "kto.jsonl", "row": 0}),
        {"prompt": "What is 3 + 3?", "completion": "7", "label": False},
        (Q, "4", True, {"dataset": "kto.jsonl", "row": 2}),  # same prompt/completion: a duplicate in the batch
        (Q, "   ", True, {}),  # empty completion
        (Q, "5", "yes", {}),  # label not a bool
        ([{"role": "assistant", "content": "hi"}], "x", True, {}),  # no user turn last
    ]
    result = store.add_completions(rows, source="import:kto.jsonl")
    assert (result.added, result.duplicates, result.invalid) == (2, 1, 3)
    assert [e.split(":")[0] for e in result.errors] == ["row 4", "row 5", "row 6"]
    again = store.add_completions(rows[:2], source="import:kto.jsonl")
    assert (again.added, again.duplicates) == (0, 2)
    stored = store.stored_completions()
    assert [(c.prompt, c.completion, c.label, c.source) for c in stored] == [
        (Q, "4", True, "import:kto.jsonl"),
        ([{"role": "user", "content": "What is 3 + 3?"}], "7", False, "import:kto.jsonl"),
    ]
    assert stored[0].provenance == {"dataset": "kto.jsonl", "row": 0} and stored[0].annotator is None
    assert store.feedback_counts() == {"import:kto.jsonl": {"desirable": 1, "undesirable": 1}}


def test_bad_source_is_refused_and_nothing_is_stored(store):
    with pytest.raises(ValueError, match="source is empty"):
        store.add_completions([(Q, "4", True, {})], source=" ")
    with pytest.raises(ValueError, match="derived from votes"):
        store.add_completions([(Q, "4", True, {})], source="both_bad")
    assert store.stored_completions() == []


def test_chat_rating_replaces_the_same_annotators_earlier_rating(store):
    prov = {"model_id": "demo", "adapter_id": "round-1", "side": "aligned"}
    store.rate_completion(Q, "4", True, "alice", prov)
    store.rate_completion(Q, "4", False, "alice", prov)  # changed her mind
    store.rate_completion(Q, "4", True, "bob", prov)
    rated = store.stored_completions("chat")
    assert [(c.annotator, c.label) for c in rated] == [("alice", False), ("bob", True)]
    assert rated[0].provenance == prov
    with pytest.raises(ValueError, match="annotator name is empty"):
        store.rate_completion(Q, "4", True, "  ", prov)


def test_both_bad_and_written_responses_come_from_votes_and_leave_with_undo(store):
    store.add_prompts(["What is 2 + 2?"], source="test")
    prompt = store.next_prompt()
    bad = store.add_pair(prompt, "5", "22", swapped=False, model_id="demo", adapter_id=None, sampling=SAMPLING,
                         served_to="alice")
    good = store.add_pair(prompt, "4", "five", swapped=False, model_id="demo", adapter_id=None, sampling=SAMPLING,
                          served_to="alice")
    vote_bad = store.record_vote(bad.id, "both_bad", "alice", reason="both wrong", written="4.").vote
    store.record_vote(good.id, "A", "alice")
    derived = store.completions_from_votes()
    assert [(c.completion, c.label, c.source) for c in derived] == [
        ("5", False, "both_bad"), ("22", False, "both_bad"), ("4.", True, "written")]
    assert derived[0].provenance["vote_id"] == vote_bad.id and derived[0].provenance["pair_id"] == bad.id
    store.rate_completion(Q, "4", True, "alice")
    assert store.feedback_counts() == {"chat": {"desirable": 1, "undesirable": 0},
                                       "both_bad": {"desirable": 0, "undesirable": 2},
                                       "written": {"desirable": 1, "undesirable": 0}}
    store.undo_last_vote("alice")  # the A vote
    store.undo_last_vote("alice")  # the both-bad vote: its completions go with it
    assert store.completions_from_votes() == []
    assert len(store.labelled_completions()) == 1


def test_chat_thumbs_through_the_service_are_stored_with_provenance(service):
    history = [{"role": "user", "content": "What is 2 + 2?"}]
    base, aligned = service.chat([], [], "What is 2 + 2?")
    assert aligned is None  # no round yet: only the base reply can be rated
    assert "thumbs down" in service.rate_reply(history, base, False, "alice", "base")
    with pytest.raises(ValueError, match="once a round exists"):
        service.rate_reply(history, base, True, "alice", "aligned")
    (rated,) = service.store.stored_completions("chat")
    assert (rated.prompt, rated.completion, rated.label, rated.annotator) == (history, base, False, "alice")
    assert rated.provenance["side"] == "base" and rated.provenance["adapter_id"] is None
    assert rated.provenance["model_id"] == service.policy.choice.label


def test_selection_setting_is_validated_and_said_in_words(service):
    assert "coverage" in service.set_selection("coverage")
    message = service.set_selection("active", 0.4)
    assert "none yet" in message and "40%" in message
    assert service.labeling.selection.mode == "active" and service.labeling.selection.coverage_share == 0.4
    with pytest.raises(ValueError, match="coverage_share"):
        service.set_selection("active", 1.5)
    with pytest.raises(ValueError, match="selection='greedy'"):
        service.set_selection("greedy")
    assert service.labeling.selection.mode == "active"  # a refused setting changes nothing
