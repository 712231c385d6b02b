"""Bring your own data: small files in each published preference format, built here, detected, parsed, stored with
provenance, re-imported (nothing added) and refused with messages that name the fix."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from prefapp.config import ConfigError
from prefapp.preferences.formats import FORMATS, RowError, hh_messages
from prefapp.preferences.pair_import import import_source, preview, read_source
from prefapp.store import Store

U = lambda text: {"role": "user", "content": text}  # noqa: E731
A = lambda text: {"role": "assistant", "content": text}  # noqa: E731
Q1, Q2 = "What is 2 + 2?", "Name a primary colour."
CONTEXT = [U("Hi!"), A("Hello. How can I help?"), U(Q1)]  # a multi-turn prompt

# Each format: (file name, rows, the pairs they must give as (prompt, chosen, rejected), skipped by reason)
TRL_STANDARD = [{"prompt": Q1, "chosen": "4", "rejected": "5"},
                {"prompt": Q2, "chosen": "Red.", "rejected": "Purple."},
                {"prompt": Q2, "chosen": "Red.", "rejected": "Red."}]
TRL_STANDARD_IMPLICIT = [{"chosen": f"Question: {Q1}\nAnswer: 4", "rejected": f"Question: {Q1}\nAnswer: 5"},
                         {"chosen": "Red.", "rejected": "Blue."}]
TRL_CONVERSATIONAL = [{"prompt": CONTEXT, "chosen": [A("4")], "rejected": [A("5")]},
                      {"prompt": [U(Q2)], "chosen": [A("Red.")], "rejected": [A("")]}]
TRL_CONVERSATIONAL_IMPLICIT = [  # as in ultrafeedback_binarized: a prompt string, scores, whole conversations
    {"prompt": Q1, "chosen": [*CONTEXT, A("4")], "rejected": [*CONTEXT, A("5")], "score_chosen": 9.0,
     "score_rejected": 2.0},
    {"prompt": Q2, "chosen": [U(Q2), A("Red.")], "rejected": [U(Q2), A("Red.")], "score_chosen": 5.0,
     "score_rejected": 5.0}]
HH_RLHF = [{"chosen": "\n\nHuman: Hi!\n\nAssistant: Hello. How can I help?\n\nHuman: What is 2 + 2?\n\nAssistant: 4",
            "rejected": "\n\nHuman: Hi!\n\nAssistant: Hello. How can I help?\n\nHuman: What is 2 + 2?\n\nAssistant: 5"},
           {"chosen": f"\n\nHuman: {Q2}\n\nAssistant: Red.", "rejected": f"\n\nHuman: {Q2}\n\nAssistant:"},
           {"chosen": "no dialogue here", "rejected": "none here either"}]
SHAREGPT = [{"conversations": [{"from": "human", "value": "Hi!"}, {"from": "gpt", "value": "Hello. How can I help?"},
                               {"from": "human", "value": Q1}],
             "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}},
            {"conversations": [{"from": "human", "value": Q2}], "system": "Be brief.",
             "chosen": {"from": "gpt", "value": "Red."}, "rejected": {"from": "gpt", "value": "Purple."}},
            {"conversations": [{"from": "gpt", "value": "I start."}],
             "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}]
SHAREGPT_OPENAI = [{"messages": CONTEXT, "chosen": A("4"), "rejected": A("5")},
                   {"messages": [U(Q2)], "chosen": A("Red."), "rejected": A("Purple.")}]
SHAREGPT_AS_PROMPT = [{"prompt": [{"from": "human", "value": Q1}], "chosen": {"from": "gpt", "value": "4"},
                       "rejected": {"from": "gpt", "value": "5"}}]  # `conversations` renamed to `prompt`


def completion(model: str, response: str, overall: float) -> dict:
    return {"model": model, "response": response, "overall_score": overall,
            "annotations": {"helpfulness": {"Rating": "3", "Rationale": "ok"}}}


ULTRAFEEDBACK = [
    {"source": "test", "instruction": Q1, "models": ["a", "b", "c"],
     "completions": [completion("a", "5", 3.0), completion("b", "4", 9.0), completion("c", "22", 3.0)]},
    {"source": "test", "instruction": Q2, "models": ["a", "b"],
     "completions": [completion("a", "Red.", 7.0), completion("b", "Blue.", 7.0)]},
]
OASST_FLAT = [  # an OpenAssistant message table: ranks among siblings, one deleted reply, one unranked
    {"message_id": "p1", "parent_id": None, "role": "prompter", "text": Q1, "rank": None, "deleted": False},
    {"message_id": "a1", "parent_id": "p1", "role": "assistant", "text": "4", "rank": 0, "deleted": False},
    {"message_id": "a2", "parent_id": "p1", "role": "assistant", "text": "5", "rank": 1, "deleted": False},
    {"message_id": "a3", "parent_id": "p1", "role": "assistant", "text": "22", "rank": 2, "deleted": False},
    {"message_id": "a4", "parent_id": "p1", "role": "assistant", "text": "spam", "rank": None, "deleted": True},
    {"message_id": "p2", "parent_id": "a1", "role": "prompter", "text": "And 3 + 3?", "rank": None, "deleted": False},
    {"message_id": "a5", "parent_id": "p2", "role": "assistant", "text": "7", "rank": 1, "deleted": False},
    {"message_id": "a6", "parent_id": "p2", "role": "assistant", "text": "6", "rank": 0, "deleted": False},
]
OASST_PAIRS = [([U(Q1)], "4", "5"), ([U(Q1)], "4", "22"), ([U(Q1), A("4"), U("And 3 + 3?")], "6", "7")]
KTO = [{"prompt": Q1, "completion": "4", "label": True}, {"prompt": Q1, "completion": "5", "label": False},
       {"prompt": Q2, "completion": "Red.", "label": "maybe"}]
KTO_MESSAGES = [{"messages": [U(Q1), A("4")], "label": True}, {"messages": [U(Q1), A("5")], "label": False}]

CASES = {  # name: (format, file, rows, pairs, skipped)
    "trl-standard": ("trl-standard", "standard.json", TRL_STANDARD,
                     [([U(Q1)], "4", "5"), ([U(Q2)], "Red.", "Purple.")], {"chosen equals rejected": 1}),
    "trl-standard-implicit": ("trl-standard-implicit", "implicit.jsonl", TRL_STANDARD_IMPLICIT,
                              [([U(f"Question: {Q1}\nAnswer:")], "4", "5")],
                              {"chosen and rejected share no prompt": 1}),
    "trl-conversational": ("trl-conversational", "conv.parquet", TRL_CONVERSATIONAL, [(CONTEXT, "4", "5")],
                           {"empty assistant message": 1}),
    "trl-conversational-implicit": ("trl-conversational-implicit", "ufb.jsonl", TRL_CONVERSATIONAL_IMPLICIT,
                                    [(CONTEXT, "4", "5")], {"chosen equals rejected": 1}),
    "hh-rlhf": ("hh-rlhf", "hh.jsonl", HH_RLHF, [(CONTEXT, "4", "5")],
                {"empty assistant message": 1, "no Human:/Assistant: turns": 1}),
    "sharegpt-json": ("sharegpt", "sharegpt.json", SHAREGPT,
                      [(CONTEXT, "4", "5"), ([{"role": "system", "content": "Be brief."}, U(Q2)], "Red.", "Purple.")],
                      {"the prompt does not end with a user turn": 1}),
    "sharegpt-openai-jsonl": ("sharegpt", "openai.jsonl", SHAREGPT_OPENAI,
                              [(CONTEXT, "4", "5"), ([U(Q2)], "Red.", "Purple.")], {}),
    "sharegpt-renamed-to-prompt": ("sharegpt", "renamed.json", SHAREGPT_AS_PROMPT, [([U(Q1)], "4", "5")], {}),
    "ultrafeedback": ("ultrafeedback", "uf.jsonl", ULTRAFEEDBACK, [([U(Q1)], "4", None)],
                      {"every completion has the same rating": 1}),
    "oasst-table": ("oasst", "oasst.parquet", OASST_FLAT, OASST_PAIRS, {}),
}


def write(path: Path, rows: list[dict]) -> Path:
    """Rows as the file type the name says: a JSON array, JSON lines, CSV or Parquet."""
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False))
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        Dataset.from_list(rows).to_parquet(str(path))
    return path


def triples(parsed) -> list[tuple]:
    return [(p.prompt, p.chosen, p.rejected) for p in parsed.items]


@pytest.mark.parametrize("case", CASES)
def test_each_format_is_detected_and_parsed(case, tmp_path):
    fmt, name, rows, pairs, skipped = CASES[case]
    parsed = preview(str(write(tmp_path / name, rows)))
    assert parsed.format == fmt, parsed.why
    got = triples(parsed)
    if fmt == "ultrafeedback":  # best vs one strictly lower-rated, drawn with a seed from the prompt
        assert got[0][:2] == ([U(Q1)], "4") and got[0][2] in ("5", "22")
        assert triples(preview(str(tmp_path / name))) == got  # the same draw every time
    else:
        assert got == pairs
    assert parsed.skipped_by_reason() == skipped
    assert len(parsed.sample()) == min(3, len(pairs))


def test_oasst_trees_nested_to_any_depth_give_the_same_pairs_as_the_table(tmp_path):
    def node(message_id: str) -> dict:
        row = next(r for r in OASST_FLAT if r["message_id"] == message_id)
        kids = [node(r["message_id"]) for r in OASST_FLAT if r["parent_id"] == message_id]
        return {"message_id": message_id, "role": row["role"], "text": row["text"], "rank": row["rank"],
                "deleted": row["deleted"], "replies": kids}

    import gzip

    tree = {"message_tree_id": "p1", "tree_state": "ready_for_export", "prompt": node("p1")}
    parsed = preview(str(write(tmp_path / "trees.jsonl", [tree])))
    assert parsed.format == "oasst" and triples(parsed) == OASST_PAIRS
    with gzip.open(tmp_path / "trees.jsonl.gz", "wt", encoding="utf-8") as f:  # as published
        f.write(json.dumps(tree) + "\n")
    assert triples(preview(str(tmp_path / "trees.jsonl.gz"))) == OASST_PAIRS


def test_compressed_files_as_published_read_the_same(tmp_path):
    """hh-rlhf ships as train.jsonl.gz, OpenAssistant trees as .trees.jsonl.gz."""
    import gzip

    path = tmp_path / "train.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in HH_RLHF)
    parsed = preview(str(path))
    assert parsed.format == "hh-rlhf" and triples(parsed) == CASES["hh-rlhf"][3]


def test_kto_rows_parse_as_labelled_completions(tmp_path):
    parsed = preview(str(write(tmp_path / "kto.csv", KTO)))  # CSV: the labels come back as text
    assert parsed.format == "kto" and not parsed.paired
    assert [(c.prompt, c.completion, c.label) for c in parsed.items] == [([U(Q1)], "4", True), ([U(Q1)], "5", False)]
    assert parsed.skipped_by_reason() == {"label is not true/false": 1}
    parsed = preview(str(write(tmp_path / "kto_messages.jsonl", KTO_MESSAGES)))
    assert [(c.prompt, c.completion, c.label) for c in parsed.items] == [([U(Q1)], "4", True), ([U(Q1)], "5", False)]


def test_kto_import_goes_to_the_feedback_store_once(tmp_path):
    path = write(tmp_path / "kto.jsonl", KTO)
    with Store(tmp_path / "p.duckdb") as store:
        report = import_source(store, str(path))
        assert (report.kind, report.added, report.duplicates, report.skipped) == (
            "labelled completions", 2, 0, {"label is not true/false": 1})
        stored = store.stored_completions()
        assert [(c.prompt, c.completion, c.label, c.source) for c in stored] == [
            ([U(Q1)], "4", True, "import:kto.jsonl"), ([U(Q1)], "5", False, "import:kto.jsonl")]
        assert stored[1].provenance == {"dataset": "kto.jsonl", "format": "kto", "row": 1,
                                        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        again = import_source(store, str(path))
        assert (again.added, again.duplicates) == (0, 2) and len(store.stored_completions()) == 2
        assert store.imported_pairs() == []


def test_every_source_kind_reads_the_same_rows(tmp_path):
    rows = TRL_STANDARD[:2]
    expected = [([U(Q1)], "4", "5"), ([U(Q2)], "Red.", "Purple.")]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    DatasetDict({"train": Dataset.from_list(rows[:1]), "test": Dataset.from_list(rows[1:])}).save_to_disk(
        str(tmp_path / "dict"))
    for source in (write(tmp_path / "a.json", rows), write(tmp_path / "a.jsonl", rows),
                   write(tmp_path / "a.csv", rows), write(tmp_path / "a.parquet", rows), tmp_path / "saved"):
        assert triples(preview(str(source))) == expected, source
    assert triples(preview(str(tmp_path / "dict"), split="test")) == expected[1:]


def test_hh_dialogues_become_messages():
    assert hh_messages("Human: Hi\n\nAssistant: Hello\n\nHuman: Bye") == [U("Hi"), A("Hello"), U("Bye")]
    with pytest.raises(RowError, match="no Human:/Assistant: turns"):
        hh_messages("just text")


def test_import_stores_pairs_with_provenance_once(tmp_path):
    path = write(tmp_path / "sharegpt.json", SHAREGPT)
    with Store(tmp_path / "p.duckdb") as store:
        report = import_source(store, str(path))
        assert (report.format, report.rows, report.added, report.duplicates) == ("sharegpt", 3, 2, 0)
        assert report.skipped == {"the prompt does not end with a user turn": 1}
        assert report.examples["the prompt does not end with a user turn"].startswith('row 2: {"conversations"')
        stored = store.imported_pairs()
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        assert [(p.source, p.format, p.source_row, p.file_sha256) for p in stored] == [
            ("sharegpt.json", "sharegpt", 0, sha), ("sharegpt.json", "sharegpt", 1, sha)]
        assert (stored[0].prompt, stored[0].chosen, stored[0].rejected) == (CONTEXT, "4", "5")
        again = import_source(store, str(path))
        assert (again.added, again.duplicates) == (0, 2)
        assert len(store.imported_pairs()) == 2 and store.imported_counts() == {"sharegpt.json": 2}
        # the same pair from another file in another format is the same pair (the other has no system turn)
        openai = import_source(store, str(write(tmp_path / "openai.jsonl", SHAREGPT_OPENAI)))
        assert (openai.added, openai.duplicates) == (1, 1)


def test_an_import_is_one_transaction(tmp_path):
    with Store(tmp_path / "p.duckdb") as store:
        rows = [([U(Q1)], "4", "5", 0), ([U(Q2)], "Red.", "Red.", 1)]  # the second breaks a rule of the store
        with pytest.raises(ValueError, match="row 1: chosen and rejected must be two different"):
            store.add_imported_pairs(rows, source="x.json", format="trl-standard", file_sha256="0" * 64)
        assert store.imported_pairs() == []


REFUSALS = [  # (file name, content, message)
    ("cols.jsonl", '{"question": "q", "answer": "a"}\n',
     r"unknown preference format: columns found: question, answer\. Accepted: trl-standard: .*kto: .*pass --format"),
    ("empty.json", "[]", r"holds no rows"),
    ("bad.jsonl", '{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": \n', r"is not valid JSON"),
    ("rows.txt", "hello\n", r"unsupported file type \.txt: give a \.json, \.jsonl, \.csv or \.parquet file"),
    ("same.json", json.dumps([{"prompt": "q", "chosen": "a", "rejected": "a"}]),
     r"no usable row in same.json read as trl-standard \(1 chosen equals rejected\); columns found: prompt, chosen, "
     r"rejected\. Pick the right --format"),
]


@pytest.mark.parametrize("name,content,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_fix_and_write_nothing(name, content, message, tmp_path):
    (tmp_path / name).write_text(content)
    with Store(tmp_path / "p.duckdb") as store:
        with pytest.raises(ConfigError, match=message):
            import_source(store, str(tmp_path / name))
        assert store.imported_pairs() == []


def test_other_refusals(tmp_path):
    write(tmp_path / "a.json", TRL_STANDARD)
    with pytest.raises(ConfigError, match="unknown format 'dpo': use auto or one of trl-standard, "):
        preview(str(tmp_path / "a.json"), format="dpo")
    with pytest.raises(ConfigError, match="missing.json does not exist"):
        read_source(str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="no source given"):
        read_source("  ")
    DatasetDict({"train": Dataset.from_list(TRL_STANDARD)}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(ConfigError, match="has no split 'test': pick one of train"):
        read_source(str(tmp_path / "dict"), split="test")
    with pytest.raises(ConfigError, match=r"could not read 'someone/prefs' .*Hub dataset id"):
        read_source("someone/prefs")  # offline here: the Hub is never reached
    with pytest.raises(ConfigError, match=r"no usable row .* read as kto \(3 label is not true/false\)"):
        preview(str(tmp_path / "a.json"), format="kto")  # a wrong --format is refused too


def test_every_format_has_a_case():
    covered = {fmt for fmt, *_ in CASES.values()} | {"kto"}
    assert covered == set(FORMATS)


def prefapp(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFAPP_MODEL": "demo"}
    return subprocess.run([sys.executable, "-m", "prefapp.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_import_prints_counts_and_reimport_adds_nothing(tmp_path):
    path = str(write(tmp_path / "hh.jsonl", HH_RLHF))
    shown = prefapp("import", path, "--preview", "--data-dir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["format"] == "hh-rlhf" and not (tmp_path / "prefapp.duckdb").exists()
    done = prefapp("import", path, "--data-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert (counts["added"], counts["duplicates"], counts["skipped"]) == (
        1, 0, {"empty assistant message": 1, "no Human:/Assistant: turns": 1})
    again = json.loads(prefapp("import", path, "--data-dir", str(tmp_path), "--json").stdout)
    assert (again["added"], again["duplicates"]) == (0, 1)
    refused = prefapp("import", str(tmp_path / "nope.csv"), "--data-dir", str(tmp_path))
    assert refused.returncode == 2 and "nope.csv does not exist" in refused.stderr


def test_rated_responses_with_a_scores_column(tmp_path):
    rows = [{"prompt": Q1, "responses": ["5", "4", "22"], "scores": [1, 9, 2]}]
    parsed = preview(str(write(tmp_path / "rated.parquet", rows)))
    assert parsed.format == "ultrafeedback" and triples(parsed)[0][:2] == ([U(Q1)], "4")


def test_more_refusals(tmp_path):
    from prefapp.cli import main
    from prefapp.preferences.pair_import import as_training_rows

    (tmp_path / "list.json").write_text('[1, 2]')  # datasets reads it as a `text` column: no format fits
    with pytest.raises(ConfigError, match="unknown preference format: columns found: text"):
        preview(str(tmp_path / "list.json"))
    with pytest.raises(ConfigError, match="holds labelled completions \\(kto\\), not pairs: DPO needs pairs"):
        as_training_rows(preview(str(write(tmp_path / "kto.jsonl", KTO))))
    assert main(["train", "--resume", "--data-dir", str(tmp_path)]) == 2  # refused before anything loads
