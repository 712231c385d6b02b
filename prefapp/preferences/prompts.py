"""Reading prompt sets: .txt (one prompt per line) and .jsonl ({"prompt": str} or {"messages": [...]}, cut after its
last user turn).

Bad lines are reported with their line number and what to fix; nothing is stored until the whole file parsed.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefapp.config import ConfigError

MAX_PROMPT_CHARS = 20_000  # far beyond a chat prompt; protects the store and the tokenizer from pasted files
MAX_LINE_CHARS = 5 * MAX_PROMPT_CHARS  # a longer line cannot hold a valid prompt: refuse it before parsing
MAX_FILE_BYTES = 256 * 2**20  # a prompt file this large is a mistake (a dataset dump?), not a prompt set
Prompt = str | list[dict]


def parse_typed_prompts(text: str) -> list[str]:
    """Prompts typed in the app: one per non-empty line."""
    prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not prompts:
        raise ConfigError("no prompt given: type one prompt per line")
    return [_checked_length(p, f"line {i + 1}") for i, p in enumerate(prompts)]


def load_prompt_file(path: Path) -> list[Prompt]:
    """All prompts of a .txt or .jsonl file, or a ConfigError naming the bad line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} is not a file: give the path of a .txt or .jsonl prompt file")
    text = _read_text(path)
    if path.suffix == ".txt":
        prompts: list[Prompt] = [_checked_length(line.strip(), f"{path.name} line {n}")
                                 for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    elif path.suffix == ".jsonl":
        prompts = [_jsonl_prompt(line, n, path.name) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        raise ConfigError(f"{path.name}: unsupported prompt file type, use .txt (one per line) or .jsonl")
    if not prompts:
        raise ConfigError(f"{path.name} contains no prompts")
    return prompts


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{path.name} is {size / 2**20:.0f} MB (limit {MAX_FILE_BYTES // 2**20} MB): "
                          "split it into smaller prompt files")
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark from Windows editors is not text
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name} is not UTF-8 text (byte {exc.start}): re-save it as UTF-8") from exc


def _jsonl_prompt(line: str, n: int, name: str) -> Prompt:
    if len(line) > MAX_LINE_CHARS:
        raise ConfigError(f"{name} line {n} is {len(line)} characters (limit {MAX_LINE_CHARS}): shorten or split it")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} line {n} is not valid JSON ({exc.msg}): fix or remove that line") from exc
    if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
        return _checked_length(obj["prompt"], f"{name} line {n}")
    if isinstance(obj, dict) and isinstance(obj.get("messages"), list):
        return cut_after_last_user(obj["messages"]) or obj["messages"]  # no user turn: the store says why
    raise ConfigError(f'{name} line {n} needs a "prompt" string or a "messages" list of {{"role","content"}} objects')


def cut_after_last_user(messages: list) -> list | None:
    """A conversation up to its last user turn (the model answers that turn); None without a user turn."""
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=None)
    return None if last is None else messages[: last + 1]


def _checked_length(prompt: str, where: str) -> str:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ConfigError(f"{where} is {len(prompt)} characters (limit {MAX_PROMPT_CHARS}): shorten or split it")
    return prompt
