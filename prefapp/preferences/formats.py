"""Preference data in the shapes people publish it, detected from the columns and read into one shape.

Every format becomes `ParsedPair` (prompt messages, chosen text, rejected text) or, for unpaired data,
`ParsedCompletion` (prompt messages, one response, desirable or not). Multi-turn context stays as messages; the
answer is the one assistant turn after the prompt's last user turn. A row that cannot become that raises `RowError`
whose message is a short reason (rows are counted by reason, so the reason never quotes the row).

Binarizing rated completions (UltraFeedback): `chosen` is the best-rated completion (overall_score when present,
else the mean of its aspect ratings) and `rejected` is one of the strictly lower-rated ones, drawn at random with
a seed taken from the prompt text, so a re-import draws the same one. OpenAssistant trees: under each prompter
message with two or more ranked, undeleted assistant replies, the best-ranked reply is `chosen` against each other
ranked reply; the context is the path of messages from the tree's root.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prefapp.errors import ConfigError

MAX_TEXT_CHARS = 200_000  # one prompt or answer; a longer cell is a dump, not a turn
ROLE_NAMES = {"user": "user", "human": "user", "prompter": "user", "assistant": "assistant", "gpt": "assistant",
              "bot": "assistant", "model": "assistant", "chatgpt": "assistant", "system": "system"}
HH_TURN = re.compile(r"\n\n(Human|Assistant):")  # Anthropic hh-rlhf: "\n\nHuman: ...\n\nAssistant: ..."
PROMPT_COLUMNS = ("prompt", "conversations", "messages", "question", "instruction", "input", "query")
RESPONSE_KEYS = ("response", "text", "completion", "content", "output")
SCORE_COLUMNS = ("scores", "ratings", "rewards")


class RowError(ValueError):
    """A row that cannot become a pair; the message is the reason it is counted under."""


@dataclass(frozen=True)
class ParsedPair:
    prompt: list[dict]  # [{"role", "content"}, ...], ends with the user turn
    chosen: str
    rejected: str
    row: int  # 0-based row of the source table this pair came from


@dataclass(frozen=True)
class ParsedCompletion:
    prompt: list[dict]
    completion: str
    label: bool  # True: desirable
    row: int


Parsed = ParsedPair | ParsedCompletion


@dataclass(frozen=True)
class Skipped:
    row: int
    reason: str


@dataclass(frozen=True)
class Format:
    name: str
    label: str  # what the Data tab and the CLI call it
    paired: bool  # False: labelled completions (KTO shape), stored as single-sided feedback
    parse: Callable[[Sequence[dict]], Iterator[Parsed | Skipped]]


# ---------------------------------------------------------------------------------------------
# Cells -> messages and answers.


def _text(value: object, what: str) -> str:
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):  # OpenAI content parts
        value = "".join(str(p.get("text") or "") for p in value if p.get("type", "text") == "text")
    if not isinstance(value, str):
        raise RowError(f"{what} is not text")
    text = value.strip()
    if not text:
        raise RowError(f"empty {what}")
    if len(text) > MAX_TEXT_CHARS:
        raise RowError(f"{what} longer than {MAX_TEXT_CHARS} characters")
    return text


def _message(m: object) -> dict:
    if not isinstance(m, dict):
        raise RowError("a message is not an object")
    if m.get("role") is not None:
        role, content = m.get("role"), m.get("content")
    elif m.get("from") is not None:
        role, content = m.get("from"), m.get("value")
    else:
        raise RowError("a message has neither role/content nor from/value")
    role = ROLE_NAMES.get(str(role).lower())
    if role is None:
        raise RowError("a message with a role other than system/user/assistant (tool or function turns)")
    return {"role": role, "content": _text(content, f"{role} message")}


def messages(value: object) -> list[dict]:
    """A conversation cell (role/content or ShareGPT from/value messages) as clean messages, same roles merged."""
    if not isinstance(value, list) or not value:
        raise RowError("a conversation is not a non-empty list of messages")
    out: list[dict] = []
    for m in map(_message, value):
        if out and out[-1]["role"] == m["role"]:
            out[-1] = {"role": m["role"], "content": out[-1]["content"] + "\n\n" + m["content"]}
        else:
            out.append(m)
    return out


def answer(value: object) -> str:
    """A response cell: text, one assistant message, or a list holding exactly one assistant message."""
    if isinstance(value, str):
        return _text(value, "response")
    if isinstance(value, dict):
        value = [value]
    turns = messages(value)
    if len(turns) != 1 or turns[0]["role"] != "assistant":
        raise RowError("a response is not one assistant turn")
    return turns[0]["content"]


def _prompt_messages(turns: list[dict]) -> list[dict]:
    if turns[-1]["role"] != "user":
        raise RowError("the prompt does not end with a user turn")
    if not all(t["content"] for t in turns):
        raise RowError("an empty turn in the prompt")
    return turns


def hh_messages(text: object) -> list[dict]:
    """An Anthropic hh-rlhf dialogue string as messages."""
    if not isinstance(text, str):
        raise RowError("an hh-rlhf dialogue is not text")
    text = text if text.startswith("\n\n") else "\n\n" + text.lstrip()
    parts = HH_TURN.split(text)
    if len(parts) < 3:
        raise RowError("no Human:/Assistant: turns")
    turns = [{"role": "user" if who == "Human" else "assistant", "content": said.strip()}
             for who, said in zip(parts[1::2], parts[2::2])]
    return turns


def looks_hh(value: object) -> bool:
    return isinstance(value, str) and ("\n\nHuman:" in value or value.lstrip().startswith("Human:")) \
        and "Assistant:" in value


def row_prompt(row: dict) -> list[dict]:
    """The prompt of a row from its usual columns (a `system` column becomes the system turn)."""
    for column in PROMPT_COLUMNS:
        value = row.get(column)
        if value is None or (isinstance(value, (str, list)) and not value and column != "prompt"):
            continue
        if column == "instruction" and isinstance(row.get("input"), str) and row["input"].strip():
            value = f"{value}\n\n{row['input']}"  # alpaca: instruction + input
        if isinstance(value, str):
            turns = hh_messages(value) if looks_hh(value) else [{"role": "user", "content": _text(value, "prompt")}]
        else:
            turns = messages(value)
        system = row.get("system")
        if isinstance(system, str) and system.strip() and turns[0]["role"] != "system":
            turns = [{"role": "system", "content": system.strip()}, *turns]
        return _prompt_messages(turns)
    raise RowError("no prompt")


def split_implicit(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], str, str]:
    """Two full conversations that share the prompt: (prompt, chosen answer, rejected answer)."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n == len(chosen) == len(rejected):
        raise RowError("chosen equals rejected")
    if n == 0:
        raise RowError("chosen and rejected share no prompt")
    if chosen[n - 1]["role"] != "user":  # equal up to part of an answer: the prompt is the turns before it
        n -= 1
        while n and chosen[n - 1]["role"] != "user":
            n -= 1
        if n == 0:
            raise RowError("the prompt does not end with a user turn")
    return _prompt_messages(chosen[:n]), answer(chosen[n:]), answer(rejected[n:])


def pair(prompt: list[dict], chosen: str, rejected: str, row: int) -> ParsedPair:
    if chosen == rejected:
        raise RowError("chosen equals rejected")
    return ParsedPair(prompt, chosen, rejected, row)


# ---------------------------------------------------------------------------------------------
# One parser per format. Each yields pairs (or completions) and Skipped rows, in row order.


def _per_row(fn: Callable[[dict, int], Parsed]) -> Callable[[Sequence[dict]], Iterator[Parsed | Skipped]]:
    """A parser over rows from a function of one row."""
    def parse(rows: Sequence[dict]) -> Iterator[Parsed | Skipped]:
        for i, row in enumerate(rows):
            try:
                out = fn(row, i)
            except RowError as exc:
                yield Skipped(i, str(exc))
                continue
            yield out
    return parse


def explicit_row(row: dict, i: int) -> ParsedPair:
    """TRL standard or conversational with an explicit prompt; ShareGPT / LLaMA-Factory (conversations or messages
    + chosen + rejected, answers as text or one message)."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, list) and chosen and isinstance(chosen[0], dict) and _first_role(chosen) != "assistant":
        return _implicit_messages(row, i)  # a full conversation after all
    prompt = row_prompt(row)
    chosen_text, rejected_text = answer(_strip_hh(chosen)), answer(_strip_hh(rejected))
    return pair(prompt, chosen_text, rejected_text, i)


def _first_role(turns: list) -> str | None:
    try:
        return _message(turns[0])["role"]
    except RowError:
        return None


def _strip_hh(value: object) -> object:
    """'\\n\\nAssistant: text' (hh-rlhf split into prompt/chosen/rejected) -> 'text'."""
    if isinstance(value, str) and value.lstrip().startswith("Assistant:"):
        return value.lstrip()[len("Assistant:"):]
    return value


def hh_row(row: dict, i: int) -> ParsedPair:
    """Anthropic hh-rlhf: chosen and rejected are whole dialogues that differ in the last assistant turn."""
    if row.get("prompt") is not None:
        return explicit_row(row, i)
    prompt, chosen, rejected = split_implicit(hh_messages(row.get("chosen")), hh_messages(row.get("rejected")))
    return pair(prompt, chosen, rejected, i)


def _implicit_messages(row: dict, i: int) -> ParsedPair:
    prompt, chosen, rejected = split_implicit(messages(row.get("chosen")), messages(row.get("rejected")))
    return pair(prompt, chosen, rejected, i)


def conversational_implicit_row(row: dict, i: int) -> ParsedPair:
    """TRL conversational, implicit prompt: chosen and rejected are full conversations (ultrafeedback_binarized)."""
    return _implicit_messages(row, i)


def standard_implicit_row(row: dict, i: int) -> ParsedPair:
    """TRL standard, implicit prompt: chosen and rejected texts begin with the same prompt text."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise RowError("chosen or rejected is not text")
    n = len(_common_prefix(chosen, rejected))
    if n == len(chosen) == len(rejected):
        raise RowError("chosen equals rejected")
    cut = max(chosen.rfind(c, 0, n + 1) for c in " \n\t")  # never split a word: cut at the last blank
    if cut <= 0 or not chosen[:cut].strip():
        raise RowError("chosen and rejected share no prompt")
    prompt = [{"role": "user", "content": _text(chosen[:cut], "prompt")}]
    return pair(prompt, answer(chosen[cut:]), answer(rejected[cut:]), i)


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def rated_row(row: dict, i: int) -> ParsedPair:
    """UltraFeedback-style: a prompt with rated completions, binarized (see the module docstring)."""
    prompt = row_prompt(row)
    rated = _rated(row)
    if len(rated) < 2:
        raise RowError("fewer than two rated completions")
    best = max(score for score, _ in rated)
    chosen = next(text for score, text in rated if score == best)
    lower = [text for score, text in rated if score < best and text != chosen]
    if not lower:
        raise RowError("every completion has the same rating")
    seed = int(hashlib.sha256(prompt[-1]["content"].encode()).hexdigest()[:16], 16)
    return pair(prompt, chosen, random.Random(seed).choice(lower), i)


def _rated(row: dict) -> list[tuple[float, str]]:
    out = []
    if isinstance(row.get("completions"), list):
        for c in row["completions"]:
            if isinstance(c, dict):
                score, text = _score(c), next((c[k] for k in RESPONSE_KEYS if c.get(k) is not None), None)
                if score is not None and text is not None:
                    out.append((score, answer(text)))
    else:
        scores = next(row[c] for c in SCORE_COLUMNS if isinstance(row.get(c), list))
        for text, score in zip(row.get("responses") or [], scores):
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                out.append((float(score), answer(text)))
    return out


def _score(c: dict) -> float | None:
    for key in ("overall_score", "score", "rating", "reward"):
        if isinstance(c.get(key), (int, float)) and not isinstance(c.get(key), bool):
            return float(c[key])
    ratings = []
    for aspect in (c.get("annotations") or {}).values():  # UltraFeedback: {"helpfulness": {"Rating": "4"}, ...}
        if isinstance(aspect, dict) and str(aspect.get("Rating", "")).strip().isdigit():
            ratings.append(float(aspect["Rating"]))
    return sum(ratings) / len(ratings) if ratings else None


def _oasst_trees(rows: Sequence[dict]) -> Iterator[tuple[dict, Callable, Callable]]:
    """(root, replies of a node, source row of a node) per tree of a message table or of nested trees."""
    if rows and isinstance(rows[0].get("prompt"), dict):
        for i, row in enumerate(rows):
            yield row["prompt"], (lambda node: node.get("replies") or []), (lambda node, i=i: i)
        return
    children: dict[object, list[dict]] = defaultdict(list)
    index = {}
    for i, row in enumerate(rows):
        index[id(row)] = i
        children[row.get("parent_id")].append(row)
    for root in children.get(None, []):
        yield root, (lambda node: children.get(node.get("message_id"), [])), (lambda node: index[id(node)])


def parse_oasst(rows: Sequence[dict]) -> Iterator[Parsed | Skipped]:
    """OpenAssistant: a flat message table (message_id, parent_id, role, text, rank) or nested trees (replies)."""
    for root, replies, row_of in _oasst_trees(rows):
        yield from _oasst_walk(root, replies, row_of)


def oasst_prompts(rows: Sequence[dict]) -> Iterator[tuple[int, list[dict]] | Skipped]:
    """(row, conversation up to it) for every undeleted prompter message: the prompts an OpenAssistant set holds."""
    for root, replies, row_of in _oasst_trees(rows):
        stack: list[tuple[dict, tuple]] = [(root, ())]
        while stack:
            node, context = stack.pop()
            if node.get("deleted"):
                continue
            try:
                turn = _message({"role": node.get("role"), "content": node.get("text")})
            except RowError as exc:
                yield Skipped(row_of(node), str(exc))
                continue
            path = (*context, turn)
            if turn["role"] == "user":
                yield row_of(node), list(path)
            stack.extend((reply, path) for reply in reversed(replies(node)))


def is_oasst(columns: Sequence[str], first: dict) -> bool:
    return {"message_id", "parent_id", "role", "text"} <= set(columns) or (
        isinstance(first.get("prompt"), dict) and "replies" in first["prompt"])


def _is_rank(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN: unranked


def _oasst_walk(node: dict, replies: Callable, row_of: Callable, context: tuple = ()) -> Iterator[Parsed | Skipped]:
    if node.get("deleted"):
        return
    try:
        turn = _message({"role": node.get("role"), "content": node.get("text")})
    except RowError as exc:
        yield Skipped(row_of(node), str(exc))
        return
    path = [*context, turn]
    below = [r for r in replies(node) if not r.get("deleted")]
    if turn["role"] == "user":
        ranked = sorted((r for r in below if _is_rank(r.get("rank"))), key=lambda r: r["rank"])
        for other in ranked[1:]:
            try:
                yield pair(list(path), _text(ranked[0].get("text"), "response"), _text(other.get("text"), "response"),
                           row_of(other))
            except RowError as exc:
                yield Skipped(row_of(other), str(exc))
    for reply in below:
        yield from _oasst_walk(reply, replies, row_of, tuple(path))


def kto_row(row: dict, i: int) -> ParsedCompletion:
    """Unpaired labelled completions: prompt + completion + label, or messages ending in the answer + label."""
    label = _label(row.get("label", row.get("kto_tag")))
    if row.get("completion") is not None:
        return ParsedCompletion(row_prompt(row), answer(row["completion"]), label, i)
    turns = messages(row.get("messages") or row.get("conversations"))
    if turns[-1]["role"] != "assistant" or len(turns) < 2:
        raise RowError("the conversation does not end with the assistant answer")
    return ParsedCompletion(_prompt_messages(turns[:-1]), turns[-1]["content"], label, i)


def _label(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise RowError("label is not true/false")


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("trl-standard", "TRL standard (prompt/chosen/rejected text)", True, _per_row(explicit_row)),
    Format("trl-standard-implicit", "TRL standard, implicit prompt (chosen/rejected text)", True,
           _per_row(standard_implicit_row)),
    Format("trl-conversational", "TRL conversational (prompt/chosen/rejected messages)", True,
           _per_row(explicit_row)),
    Format("trl-conversational-implicit", "TRL conversational, implicit prompt (chosen/rejected conversations)",
           True, _per_row(conversational_implicit_row)),
    Format("hh-rlhf", "Anthropic hh-rlhf (Human:/Assistant: dialogues)", True, _per_row(hh_row)),
    Format("sharegpt", "ShareGPT / LLaMA-Factory (conversations + chosen + rejected)", True,
           _per_row(explicit_row)),
    Format("ultrafeedback", "UltraFeedback-style rated completions (best vs a random lower-rated one)", True,
           _per_row(rated_row)),
    Format("oasst", "OpenAssistant message trees (ranked sibling replies)", True, parse_oasst),
    Format("kto", "unpaired labelled completions (KTO: prompt/completion/label)", False, _per_row(kto_row)),
)}


def format_names() -> str:
    return ", ".join(FORMATS)


def detect(columns: Sequence[str], sample: Sequence[dict]) -> tuple[str, str]:
    """(format name, what about the data decided it) from the columns and the first rows; ConfigError if none."""
    cols, first = set(columns), (sample[0] if sample else {})
    has = cols.__contains__
    if {"message_id", "parent_id", "role", "text"} <= cols:
        return "oasst", "message_id/parent_id/role/text columns (an OpenAssistant message table)"
    if has("prompt") and isinstance(first.get("prompt"), dict) and "replies" in first["prompt"]:
        return "oasst", "prompt cells with replies (OpenAssistant trees)"
    if has("completions") and isinstance(first.get("completions"), list) or \
            has("responses") and any(has(c) for c in SCORE_COLUMNS):
        return "ultrafeedback", "rated completions"
    if has("label") and (has("completion") or has("messages") or has("conversations")) and not has("chosen"):
        return "kto", "a label column beside " + ("completion" if has("completion") else "a conversation")
    if has("chosen") and has("rejected"):
        return _detect_pairs(cols, first)
    raise ConfigError(f"unknown preference format: columns found: {', '.join(columns) or 'none'}. Accepted: "
                      + "; ".join(f"{f.name}: {f.label}" for f in FORMATS.values())
                      + ". Rename the columns, or pass --format")


def _detect_pairs(cols: set, first: dict) -> tuple[str, str]:
    chosen = first.get("chosen")
    tags = _tags(first.get("conversations") or first.get("messages") or first.get("prompt"))
    if isinstance(chosen, list) and chosen and isinstance(chosen[0], dict):
        if _first_role(chosen) != "assistant":
            return "trl-conversational-implicit", "chosen/rejected are whole conversations"
        return "trl-conversational", "prompt/chosen/rejected messages"
    if isinstance(chosen, dict) or "conversations" in cols or tags == "sharegpt":
        return "sharegpt", f"conversation + chosen/rejected ({tags or 'openai'} tags)"
    if "messages" in cols or isinstance(first.get("prompt"), list):
        return "sharegpt", "messages + chosen/rejected (openai tags)"
    if any(c in cols for c in PROMPT_COLUMNS):
        if looks_hh(first.get("prompt")):
            return "hh-rlhf", "prompt holds Human:/Assistant: turns"
        return "trl-standard", "prompt/chosen/rejected text"
    if looks_hh(chosen):
        return "hh-rlhf", "chosen/rejected hold Human:/Assistant: dialogues"
    return "trl-standard-implicit", "chosen/rejected text without a prompt column"


def _tags(value: object) -> str | None:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "sharegpt" if value[0].get("from") is not None else "openai"
    return None
