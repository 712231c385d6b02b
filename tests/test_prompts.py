import json

import pytest

from prefapp.config import ConfigError
from prefapp.preferences.prompts import MAX_PROMPT_CHARS, load_prompt_file, parse_typed_prompts


def test_typed_prompts_one_per_line():
    assert parse_typed_prompts("What is 2 + 2?\n\n  Name a colour.  \n") == ["What is 2 + 2?", "Name a colour."]
    with pytest.raises(ConfigError, match="one prompt per line"):
        parse_typed_prompts("   \n\n")


def test_txt_and_jsonl(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("first\nsecond\n\n", encoding="utf-8")
    assert load_prompt_file(txt) == ["first", "second"]
    jsonl = tmp_path / "p.jsonl"
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    jsonl.write_text(json.dumps({"prompt": "one"}) + "\n" + json.dumps({"messages": conversation}) + "\n")
    assert load_prompt_file(jsonl) == ["one", conversation]


def test_bad_files_name_the_line_and_the_fix(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{not json\n')
    with pytest.raises(ConfigError, match="line 2 is not valid JSON"):
        load_prompt_file(bad)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text('{"question": "x"}\n')
    with pytest.raises(ConfigError, match='needs a "prompt" string'):
        load_prompt_file(wrong)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="re-save it as UTF-8"):
        load_prompt_file(latin)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ConfigError, match="contains no prompts"):
        load_prompt_file(empty)
    other = tmp_path / "p.csv"
    other.write_text("a\n")
    with pytest.raises(ConfigError, match="unsupported prompt file type"):
        load_prompt_file(other)


def test_huge_prompt_is_refused():
    with pytest.raises(ConfigError, match="shorten or split"):
        parse_typed_prompts("x" * (MAX_PROMPT_CHARS + 1))
