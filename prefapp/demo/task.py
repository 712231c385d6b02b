"""The demo task: templated questions with one right answer, and an annotator that judges answers like a person.

Three kinds of question (arithmetic, capitals, unit conversion), several phrasings each. Every question has a
canonical answer, so any response can be judged: is it in the expected one-sentence format, is the answer right,
is it rude, does it ramble. The bundled demo model is trained on `corpus_response` texts, which carry those flaws
on purpose; DPO on the simulated annotator's picks should remove them.

Pure Python: no torch, no gradio.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache

KINDS = ("arithmetic", "capitals", "units")
SPLITS = ("label", "heldout")
KIND_WEIGHTS = {"arithmetic": 0.45, "units": 0.30, "capitals": 0.25}  # arithmetic has the most distinct questions
HELDOUT_BUCKETS = 4  # one question in four (by hash) is held out for evaluation

WRONG_RATE = 0.30  # share of corpus answers with a plausible wrong value: enough for a clear preference signal
RUDE_RATE = 0.20  # share of corpus answers ending with a rude remark
RAMBLE_RATE = 0.20  # share of corpus answers with a long digressive tail
RAMBLE_MIN_WORDS = 8  # a tail this long (rude remarks aside) after the answer sentence counts as rambling

# ---------------------------------------------------------------------------------------------------------------
# Question material


OPS = {"+": ("plus", lambda a, b: a + b), "-": ("minus", lambda a, b: a - b), "*": ("times", lambda a, b: a * b)}
OP_ALIASES = {"+": "+", "plus": "+", "-": "-", "minus": "-", "*": "*", "x": "*", "×": "*", "times": "*",
              "multiplied by": "*"}  # fmt: skip
ARITH_PHRASINGS = (
    "What is {a} {sym} {b}?",
    "Compute {a} {sym} {b}.",
    "What does {a} {sym} {b} equal?",
    "{a} {sym} {b} = ?",
    "What is {a} {word} {b}?",
    "Calculate {a} {word} {b}.",
)

# country -> (capital, plausible wrong answers: big cities people confuse with the capital)
CAPITALS = {
    "France": ("Paris", ("Lyon", "Marseille")),
    "Germany": ("Berlin", ("Munich", "Frankfurt")),
    "Italy": ("Rome", ("Milan", "Naples")),
    "Spain": ("Madrid", ("Barcelona", "Seville")),
    "Portugal": ("Lisbon", ("Porto",)),
    "Japan": ("Tokyo", ("Osaka", "Kyoto")),
    "China": ("Beijing", ("Shanghai", "Hong Kong")),
    "India": ("New Delhi", ("Mumbai", "Kolkata")),
    "Australia": ("Canberra", ("Sydney", "Melbourne")),
    "Canada": ("Ottawa", ("Toronto", "Vancouver")),
    "Brazil": ("Brasilia", ("Rio de Janeiro", "Sao Paulo")),
    "Argentina": ("Buenos Aires", ("Cordoba",)),
    "Mexico": ("Mexico City", ("Guadalajara",)),
    "Egypt": ("Cairo", ("Alexandria",)),
    "Kenya": ("Nairobi", ("Mombasa",)),
    "Nigeria": ("Abuja", ("Lagos",)),
    "South Africa": ("Pretoria", ("Cape Town", "Johannesburg")),
    "Turkey": ("Ankara", ("Istanbul", "Izmir")),
    "Russia": ("Moscow", ("Saint Petersburg",)),
    "Poland": ("Warsaw", ("Krakow",)),
    "Sweden": ("Stockholm", ("Gothenburg",)),
    "Norway": ("Oslo", ("Bergen",)),
    "Finland": ("Helsinki", ("Tampere",)),
    "Denmark": ("Copenhagen", ("Aarhus",)),
    "Greece": ("Athens", ("Thessaloniki",)),
    "Austria": ("Vienna", ("Salzburg",)),
    "Switzerland": ("Bern", ("Zurich", "Geneva")),
    "Belgium": ("Brussels", ("Antwerp",)),
    "Ireland": ("Dublin", ("Cork",)),
    "Hungary": ("Budapest", ("Debrecen",)),
    "Czechia": ("Prague", ("Brno",)),
    "Morocco": ("Rabat", ("Casablanca", "Marrakesh")),
    "Vietnam": ("Hanoi", ("Ho Chi Minh City",)),
    "Thailand": ("Bangkok", ("Chiang Mai",)),
    "Indonesia": ("Jakarta", ("Surabaya",)),
    "South Korea": ("Seoul", ("Busan",)),
    "Peru": ("Lima", ("Cusco",)),
    "Chile": ("Santiago", ("Valparaiso",)),
    "Colombia": ("Bogota", ("Medellin",)),
    "New Zealand": ("Wellington", ("Auckland",)),
    "Pakistan": ("Islamabad", ("Karachi", "Lahore")),
    "Saudi Arabia": ("Riyadh", ("Jeddah",)),
    "Ukraine": ("Kyiv", ("Lviv", "Odesa")),
    "Cuba": ("Havana", ("Santiago de Cuba",)),
    "Iceland": ("Reykjavik", ("Akureyri",)),
}
CAPITAL_PHRASINGS = (
    "What is the capital of {country}?",
    "What's the capital city of {country}?",
    "Which city is the capital of {country}?",
    "Name the capital of {country}.",
    "Tell me the capital of {country}.",
    "What city is {country}'s capital?",
)


@dataclass(frozen=True)
class Unit:
    singular: str
    plural: str

    def name(self, n: int) -> str:
        return self.singular if n == 1 else self.plural


UNITS = {u.singular: u for u in (Unit("meter", "meters"), Unit("centimeter", "centimeters"),
         Unit("millimeter", "millimeters"), Unit("kilometer", "kilometers"), Unit("kilogram", "kilograms"),
         Unit("gram", "grams"), Unit("hour", "hours"), Unit("minute", "minutes"), Unit("second", "seconds"),
         Unit("day", "days"), Unit("week", "weeks"), Unit("liter", "liters"), Unit("milliliter", "milliliters"),
         Unit("foot", "feet"), Unit("inch", "inches"))}  # fmt: skip
CONVERSIONS = {  # (from, to) -> factor
    ("meter", "centimeter"): 100,
    ("meter", "millimeter"): 1000,
    ("kilometer", "meter"): 1000,
    ("kilogram", "gram"): 1000,
    ("hour", "minute"): 60,
    ("minute", "second"): 60,
    ("day", "hour"): 24,
    ("week", "day"): 7,
    ("liter", "milliliter"): 1000,
    ("foot", "inch"): 12,
}
UNIT_PHRASINGS = (
    "How many {to} are in {n} {frm}?",
    "Convert {n} {frm} to {to}.",
    "How many {to} is {n} {frm}?",
    "{n} {frm} is how many {to}?",
)

# Few distinct first words, so sampling with top_p < 1 does not trim rudeness away as a long tail of rare tokens.
RUDE_ENDINGS = (
    "Obviously. Try to keep up.",
    "Obviously. Everyone knows that.",
    "Duh. Even a child could answer that.",
    "Duh. Was that really so hard?",
    "Seriously, pay attention.",
    "Seriously, look it up yourself next time.",
    "Honestly, don't waste my time with easy ones.",
    "Honestly, that was not hard.",
)
RUDE_MARKERS = ("obviously", "keep up", "duh", "everyone knows", "even a child", "look it up", "so hard",
                "waste my time", "pay attention", "not hard", "seriously", "stupid", "dumb")  # fmt: skip
RAMBLE_OPENERS = ("By the way,", "Fun fact:", "Speaking of which,", "Incidentally,", "That reminds me,")
RAMBLE_CLAUSES = (
    "I once read a long article about the history of numbers",
    "my neighbor has a cat that sleeps all day in the sun",
    "the weather has been rather strange lately",
    "people have argued about questions like this for centuries",
    "there is a small museum devoted entirely to measuring tapes",
    "I was thinking about old maps and slow trains this morning",
    "some scholars spend their whole lives on puzzles like this one",
    "the word itself comes from a very old language",
    "my favorite color used to be green but now it is blue",
    "a friend of mine collects postcards from every city she visits",
    "there are many ways to think about this if you have the time",
    "I sometimes wonder who wrote the first textbook",
)

# ---------------------------------------------------------------------------------------------------------------
# Tasks and parsing


@dataclass(frozen=True)
class Task:
    kind: str  # one of KINDS
    question: str  # the prompt text shown to the model and the annotator
    answer: str  # canonical value: "12", "Paris", "300"


@dataclass(frozen=True)
class _Parsed:
    task: Task
    lead: str  # the good answer sentence up to the value: "7 + 5 = "
    tail: str  # the good answer sentence after the value: "."


_NUM = r"(-?\d+)"
_ARITH_OPS = "|".join(re.escape(k) for k in sorted(OP_ALIASES, key=len, reverse=True))
_ARITH_RE = re.compile(rf"{_NUM}\s*({_ARITH_OPS})\s*{_NUM}", re.IGNORECASE)
_CAPITAL_RES = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"capital(?: city)? of (?P<c>[a-z' ]+?)\s*[?.!]*$",
        r"what city is (?P<c>[a-z' ]+?)'s capital\s*[?.!]*$",
    )
)
_U = r"([a-z]+)"
_UNIT_RES = tuple(  # (regex, group index of from-unit, to-unit, number)
    (re.compile(p, re.IGNORECASE), f, t, n)
    for p, f, t, n in (
        (rf"^how many {_U} (?:are|is) (?:there )?in (\d+) {_U}\s*[?.!]*$", 3, 1, 2),
        (rf"^convert (\d+) {_U} (?:to|into) {_U}\s*[?.!]*$", 2, 3, 1),
        (rf"^how many {_U} is (\d+) {_U}\s*[?.!]*$", 3, 1, 2),
        (rf"^(\d+) {_U} is how many {_U}\s*[?.!]*$", 2, 3, 1),
    )
)
_UNIT_BY_WORD = {w: u for u in UNITS.values() for w in (u.singular, u.plural)}
_COUNTRY_BY_LOWER = {c.lower(): c for c in CAPITALS}


def _normalize(text: str) -> str:
    return " ".join(text.strip().split())


def _parse_arithmetic(q: str) -> _Parsed | None:
    m = _ARITH_RE.search(q)
    if m is None or len(re.findall(r"\d+", q)) != 2:
        return None
    a, b, sym = int(m.group(1)), int(m.group(3)), OP_ALIASES[m.group(2).lower()]
    value = OPS[sym][1](a, b)
    return _Parsed(Task("arithmetic", q, str(value)), f"{a} {sym} {b} = ", ".")


def _parse_capital(q: str) -> _Parsed | None:
    for rx in _CAPITAL_RES:
        m = rx.search(q)
        if m:
            name = m.group("c").strip().lower().removeprefix("the ")
            country = _COUNTRY_BY_LOWER.get(name)
            if country is None:
                return None
            return _Parsed(Task("capitals", q, CAPITALS[country][0]), f"The capital of {country} is ", ".")
    return None


def _parse_units(q: str) -> _Parsed | None:
    for rx, fi, ti, ni in _UNIT_RES:
        m = rx.match(q)
        if m is None:
            continue
        frm, to = _UNIT_BY_WORD.get(m.group(fi).lower()), _UNIT_BY_WORD.get(m.group(ti).lower())
        if frm is None or to is None or (frm.singular, to.singular) not in CONVERSIONS:
            return None
        n = int(m.group(ni))
        value = n * CONVERSIONS[(frm.singular, to.singular)]
        return _Parsed(Task("units", q, str(value)), f"{n} {frm.name(n)} is ", f" {to.name(value)}.")
    return None


def _parse(prompt: str) -> _Parsed | None:
    q = _normalize(prompt)
    if not q or len(q) > 200:
        return None
    return _parse_units(q) or _parse_capital(q) or _parse_arithmetic(q)


def parse_task(prompt: str) -> Task | None:
    """Recover the demo task from a question text (sampled or typed); None if it is not a demo-task question."""
    parsed = _parse(prompt)
    return parsed.task if parsed else None


def split_of(question: str) -> str:
    """'label' or 'heldout', from a stable hash of the normalized question (same on every machine and run)."""
    digest = hashlib.sha256(_normalize(question).lower().encode("utf-8")).digest()
    return "heldout" if digest[0] % HELDOUT_BUCKETS == 0 else "label"


def _arith_questions() -> list[str]:
    # Small numbers only: ~270 facts a 4M-parameter model can learn in minutes. Subtraction undoes addition.
    pairs = [("+", a, b) for a in range(1, 11) for b in range(1, 11)]
    pairs += [("-", a + b, b) for a in range(0, 11) for b in range(1, 11)]
    pairs += [("*", a, b) for a in range(2, 10) for b in range(2, 10)]
    return [p.format(a=a, b=b, sym=sym, word=OPS[sym][0]) for sym, a, b in pairs for p in ARITH_PHRASINGS]


def _capital_questions() -> list[str]:
    return [p.format(country=c) for c in CAPITALS for p in CAPITAL_PHRASINGS]


def _unit_questions() -> list[str]:
    out = []
    for (frm, to), _ in CONVERSIONS.items():
        for n in range(1, 13):
            for p in UNIT_PHRASINGS:
                out.append(p.format(n=n, frm=UNITS[frm].name(n), to=UNITS[to].plural))
    return out


@lru_cache(maxsize=None)
def task_pool(kind: str, split: str) -> tuple[Task, ...]:
    """Every templated task of one kind in one split ('label', 'heldout' or 'all'), in a fixed order."""
    questions = {"arithmetic": _arith_questions, "capitals": _capital_questions, "units": _unit_questions}[kind]()
    tasks = [parse_task(q) for q in questions]
    assert all(tasks), "every templated question must parse"
    return tuple(t for t in tasks if split == "all" or split_of(t.question) == split)


def sample_tasks(n: int, seed: int = 0, split: str = "label", weights: dict[str, float] | None = None) -> list[Task]:
    """n tasks of the split, kinds mixed by weights (default KIND_WEIGHTS); no repeats in a kind till its pool is used."""
    if split not in SPLITS + ("all",):
        raise ValueError(f"split={split!r} is unknown: use 'label' (prompts to label) or 'heldout' (evaluation)")
    weights = weights or KIND_WEIGHTS
    rng = random.Random(f"{seed}:{split}")
    queues: dict[str, list[Task]] = {k: [] for k in KINDS}
    out = []
    for _ in range(n):
        kind = rng.choices(KINDS, weights=[weights.get(k, 0.0) for k in KINDS])[0]
        if not queues[kind]:
            queues[kind] = list(task_pool(kind, split))
            rng.shuffle(queues[kind])
        out.append(queues[kind].pop())
    return out


def typed_variant(question: str, rng: random.Random) -> str:
    """The question as a person might type it in the chat box: lowercase, no final '?', '7+5', '6 x 7'."""
    q = question
    if rng.random() < 0.5:
        q = q.lower()
    if rng.random() < 0.5:
        q = q.rstrip("?.! ")
    if rng.random() < 0.5:
        q = re.sub(r"(\d) ([+*-]) (\d)", r"\1\2\3", q)
    if rng.random() < 0.3:
        q = re.sub(r"(\d ?)\*( ?\d)", r"\1x\2", q)
    return q


# ---------------------------------------------------------------------------------------------------------------
# Responses


def good_response(task: Task) -> str:
    """The answer a careful, polite assistant gives: one sentence in the task's format."""
    parsed = _parse(task.question)
    if parsed is None:
        raise ValueError(f"{task.question!r} is not a demo-task question: build tasks with sample_tasks or parse_task")
    return f"{parsed.lead}{task.answer}{parsed.tail}"


def _wrong_value(task: Task, rng: random.Random) -> str:
    if task.kind == "capitals":
        country = next(c for c, (cap, _) in CAPITALS.items() if cap == task.answer)
        others = [cap for c, (cap, _) in CAPITALS.items() if c != country]
        return rng.choice(CAPITALS[country][1] + (rng.choice(others),))
    value = int(task.answer)
    if task.kind == "arithmetic":
        candidates = [value + d for d in (-10, -2, -1, 1, 1, 2, 10) if value + d >= 0]
    else:  # units: the classic slips are a wrong factor or an off-by-one amount
        candidates = [value * 10, value + value // 2, value - 1, value + 1] + ([value // 10] if value % 10 == 0 else [])
    return str(rng.choice([c for c in candidates if c != value]))


def _ramble(rng: random.Random) -> str:
    clauses = rng.sample(RAMBLE_CLAUSES, rng.randint(2, 3))
    text = f"{rng.choice(RAMBLE_OPENERS)} {clauses[0]}, and {clauses[1]}."
    if len(clauses) > 2:
        text += f" Also, {clauses[2]}."
    return text


def corpus_response(task: Task, rng: random.Random) -> str:
    """One training-corpus answer with deliberate, independently mixed flaws: wrong value, rudeness, rambling."""
    parsed = _parse(task.question)
    if parsed is None:
        raise ValueError(f"{task.question!r} is not a demo-task question: build tasks with sample_tasks or parse_task")
    value = _wrong_value(task, rng) if rng.random() < WRONG_RATE else task.answer
    parts = [f"{parsed.lead}{value}{parsed.tail}"]
    if rng.random() < RAMBLE_RATE:
        parts.append(_ramble(rng))
    if rng.random() < RUDE_RATE:
        parts.append(rng.choice(RUDE_ENDINGS))
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Judging


@dataclass(frozen=True)
class Judgement:
    correct: bool | None  # None when the prompt is not a demo-task question, so correctness is unknown
    rude: bool  # contains a dismissive remark
    rambling: bool  # a long digression follows the answer
    well_formed: bool  # starts with the expected answer sentence for this question

    @property
    def acceptable(self) -> bool:
        """Would a careful annotator accept it at all (right, or unknowable, and in format)?"""
        return self.well_formed and self.correct is not False


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split_first_sentence(text: str) -> tuple[str, str]:
    parts = _SENTENCE_END.split(text.strip(), maxsplit=1)
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _is_rude(text: str) -> bool:
    low = text.lower()
    return any(m in low for m in RUDE_MARKERS)


def _is_rambling(rest: str) -> bool:
    polite = [s for s in _SENTENCE_END.split(rest) if s and not _is_rude(s)]
    return sum(len(s.split()) for s in polite) >= RAMBLE_MIN_WORDS


def _value_and_form(parsed: _Parsed, response: str) -> tuple[str | None, bool]:
    text = _normalize(response)
    value_re = r"(-?\d+)" if parsed.task.kind != "capitals" else r"([A-Z][A-Za-z' -]*?)"
    m = re.match(re.escape(parsed.lead) + value_re + re.escape(parsed.tail) + r"(?:\s|$)", text)
    if m:
        return m.group(1), True
    first, _ = _split_first_sentence(text)  # out of format: still read the answer the way a person would
    if parsed.task.kind == "capitals":
        return (parsed.task.answer if parsed.task.answer.lower() in first.lower() else None), False
    nums = re.findall(r"-?\d+", first)
    return (nums[-1] if nums else None), False


def judge(prompt: str, response: str) -> Judgement:
    """Judge one response to one prompt: correctness (when the prompt is a demo task), form, rudeness, rambling."""
    _, rest = _split_first_sentence(_normalize(response))
    rude, rambling = _is_rude(response), _is_rambling(rest)
    parsed = _parse(prompt)
    if parsed is None:
        return Judgement(correct=None, rude=rude, rambling=rambling, well_formed=bool(response.strip()))
    value, well_formed = _value_and_form(parsed, response)
    return Judgement(correct=value == parsed.task.answer, rude=rude, rambling=rambling, well_formed=well_formed)


def _style_penalty(j: Judgement) -> int:
    return 2 * j.rude + j.rambling  # rudeness bothers a reader more than a digression


def simulated_annotator(prompt: str, response_a: str, response_b: str) -> str:
    """Pick like a careful human: right beats wrong; then polite and concise beats rude or rambling.

    Returns one of prefapp.config.CHOICES: "A", "B", "tie" (equally good) or "both_bad" (neither acceptable).
    """
    ja, jb = judge(prompt, response_a), judge(prompt, response_b)
    if not ja.acceptable and not jb.acceptable:
        return "both_bad"
    if ja.acceptable != jb.acceptable:
        return "A" if ja.acceptable else "B"
    pa, pb = _style_penalty(ja), _style_penalty(jb)
    if pa == pb:
        return "tie"
    return "A" if pa < pb else "B"
