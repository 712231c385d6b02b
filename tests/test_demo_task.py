"""The demo task: splits, parsing, reference answers, the flawed corpus, the judge and the simulated annotator."""

from __future__ import annotations

import itertools
import random

import pytest

from prefapp.config import CHOICES
from prefapp.demo.task import (
    ARITH_PHRASINGS,
    CAPITAL_PHRASINGS,
    CAPITALS,
    CONVERSIONS,
    KINDS,
    OPS,
    UNIT_PHRASINGS,
    UNITS,
    Judgement,
    Task,
    corpus_response,
    good_response,
    judge,
    parse_task,
    sample_tasks,
    simulated_annotator,
    split_of,
    task_pool,
    typed_variant,
)

# ---------------------------------------------------------------------------------------------------------------
# Splits and sampling


def test_label_and_heldout_pools_are_disjoint_and_cover_everything():
    for kind in KINDS:
        label = {t.question for t in task_pool(kind, "label")}
        heldout = {t.question for t in task_pool(kind, "heldout")}
        assert label and heldout
        assert not label & heldout
        assert label | heldout == {t.question for t in task_pool(kind, "all")}


def test_sampled_splits_are_disjoint_and_sized_as_shipped():
    label = sample_tasks(1000, seed=0, split="label")
    heldout = sample_tasks(300, seed=0, split="heldout")
    assert len(label) == 1000 and len(heldout) == 300
    assert {split_of(t.question) for t in label} == {"label"}
    assert {split_of(t.question) for t in heldout} == {"heldout"}
    assert not {t.question for t in label} & {t.question for t in heldout}
    assert len({t.question for t in label}) > 900  # repeats only once a kind's pool is used up


def test_sampling_is_deterministic_and_mixes_kinds():
    a, b = sample_tasks(300, seed=3), sample_tasks(300, seed=3)
    assert a == b
    assert a != sample_tasks(300, seed=4)
    counts = {k: sum(t.kind == k for t in a) for k in KINDS}
    assert counts["arithmetic"] > counts["units"] > 30 and counts["capitals"] > 30


def test_split_is_stable_text_hash():
    # Pinned values: the split must not change between Python runs (no hash()) or machines.
    assert split_of("What is 7 + 5?") == split_of("  what is 7 + 5? ") == split_of("What  is 7 + 5?")
    assert {split_of(t.question) for t in task_pool("capitals", "all")} == {"label", "heldout"}


def test_unknown_split_names_the_valid_ones():
    with pytest.raises(ValueError, match="'label'.*'heldout'"):
        sample_tasks(3, split="train")


# ---------------------------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize("kind", KINDS)
def test_every_pooled_question_parses_back_to_its_task(kind):
    for task in task_pool(kind, "all"):
        assert parse_task(task.question) == task


@pytest.mark.parametrize("phrasing", ARITH_PHRASINGS)
@pytest.mark.parametrize("sym,a,b,answer", [("+", 7, 5, "12"), ("-", 20, 12, "8"), ("*", 9, 8, "72")])
def test_parse_each_arithmetic_phrasing(phrasing, sym, a, b, answer):
    q = phrasing.format(a=a, b=b, sym=sym, word=OPS[sym][0])
    assert parse_task(q) == Task("arithmetic", q, answer)


@pytest.mark.parametrize("phrasing", CAPITAL_PHRASINGS)
@pytest.mark.parametrize("country", ["France", "South Korea", "New Zealand"])
def test_parse_each_capital_phrasing(phrasing, country):
    q = phrasing.format(country=country)
    assert parse_task(q) == Task("capitals", q, CAPITALS[country][0])


@pytest.mark.parametrize("phrasing", UNIT_PHRASINGS)
@pytest.mark.parametrize("conversion", sorted(CONVERSIONS))
def test_parse_each_unit_phrasing(phrasing, conversion):
    frm, to = conversion
    for n in (1, 7):
        q = phrasing.format(n=n, frm=UNITS[frm].name(n), to=UNITS[to].plural)
        assert parse_task(q) == Task("units", q, str(n * CONVERSIONS[conversion]))


@pytest.mark.parametrize(
    "typed,kind,answer",
    [
        ("what is 7+5", "arithmetic", "12"),
        ("  What is 123 * 4 ?", "arithmetic", "492"),
        ("What is 6 x 7?", "arithmetic", "42"),
        ("what is 9 multiplied by 3", "arithmetic", "27"),
        ("What is 3 - 10?", "arithmetic", "-7"),
        ("WHAT IS THE CAPITAL OF FRANCE", "capitals", "Paris"),
        ("what's the capital city of the czechia?", "capitals", "Prague"),
        ("Convert 2 kilometers into meters", "units", "2000"),
        ("How many inches are there in 3 feet?", "units", "36"),
        ("convert 1 meters to centimeters.", "units", "100"),
    ],
)
def test_parse_typed_variants(typed, kind, answer):
    task = parse_task(typed)
    assert task is not None and (task.kind, task.answer) == (kind, answer)
    assert task.question == " ".join(typed.split())


@pytest.mark.parametrize("kind", KINDS)
def test_typed_variants_of_every_question_parse_to_the_same_answer(kind):
    rng = random.Random(0)
    changed = 0
    for task in task_pool(kind, "all"):
        typed = typed_variant(task.question, rng)
        changed += typed != task.question
        parsed = parse_task(typed)
        assert parsed is not None and (parsed.kind, parsed.answer) == (task.kind, task.answer), typed
    assert changed > len(task_pool(kind, "all")) / 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Tell me a joke.",
        "What is the capital of Atlantis?",
        "How many meters are in 3 kilograms?",
        "What is 1 + 2 + 3?",
        "こんにちは、元気ですか？",
        "What is love?",
    ],
)
def test_non_demo_prompts_do_not_parse(text):
    assert parse_task(text) is None


# ---------------------------------------------------------------------------------------------------------------
# Responses


def test_good_responses_have_the_documented_format():
    assert good_response(parse_task("What is 7 + 5?")) == "7 + 5 = 12."
    assert good_response(parse_task("What is 7 times 5?")) == "7 * 5 = 35."
    assert good_response(parse_task("What is the capital of France?")) == "The capital of France is Paris."
    assert good_response(parse_task("How many centimeters are in 3 meters?")) == "3 meters is 300 centimeters."
    assert good_response(parse_task("Convert 1 foot to inches.")) == "1 foot is 12 inches."


def test_good_response_rejects_foreign_task():
    with pytest.raises(ValueError, match="sample_tasks or parse_task"):
        good_response(Task("capitals", "Who are you?", "me"))


@pytest.mark.parametrize("kind", KINDS)
def test_good_responses_judge_perfect(kind):
    for task in task_pool(kind, "all"):
        assert judge(task.question, good_response(task)) == Judgement(True, False, False, True)


def test_corpus_flaw_rates_and_independence():
    rng = random.Random(0)
    tasks = sample_tasks(6000, seed=1, split="label")
    judged = [judge(t.question, corpus_response(t, rng)) for t in tasks]
    n = len(judged)
    wrong = [j for j in judged if not j.correct]
    assert all(j.well_formed for j in judged)
    assert 0.26 < len(wrong) / n < 0.34
    for flaw in ("rude", "rambling"):
        rate = sum(getattr(j, flaw) for j in judged) / n
        assert 0.17 < rate < 0.23, flaw
        rate_when_wrong = sum(getattr(j, flaw) for j in wrong) / len(wrong)
        assert abs(rate_when_wrong - rate) < 0.04, f"{flaw} should not depend on correctness"
    both = sum(j.rude and j.rambling for j in judged) / n
    assert 0.02 < both < 0.07  # ~0.2 * 0.2: flaws are mixed independently


def test_corpus_wrong_answers_are_plausible():
    rng = random.Random(1)
    capitals = {cap for cap, _ in CAPITALS.values()} | {c for _, alts in CAPITALS.values() for c in alts}
    for task in sample_tasks(1500, seed=2, split="all"):
        response = corpus_response(task, rng)
        if judge(task.question, response).correct:
            continue
        first = response.split(". ")[0]
        if task.kind == "arithmetic":
            assert 0 < abs(int(first.split(" = ")[1].rstrip(".")) - int(task.answer)) <= 10
        elif task.kind == "capitals":
            assert first.removeprefix(first[: first.index(" is ") + 4]).rstrip(".") in capitals
        else:
            assert int(first.split(" is ")[1].split()[0]) > 0


def test_corpus_is_deterministic_per_rng():
    task = parse_task("What is 8 * 7?")
    a = [corpus_response(task, random.Random(5)) for _ in range(3)]
    assert len(set(a)) == 1


# ---------------------------------------------------------------------------------------------------------------
# Judge

Q_ADD = "What is 7 + 5?"
GOOD = "7 + 5 = 12."
WRONG = "7 + 5 = 13."
RUDE = "7 + 5 = 12. Obviously. Try to keep up."
RAMBLE = "7 + 5 = 12. By the way, I once read a long article about numbers, and my cat sleeps all day."
RUDE_RAMBLE = RAMBLE + " Seriously, pay attention."
WRONG_RUDE = "7 + 5 = 11. Duh. Everyone knows that."
MALFORMED = "12 + 7 5 = = ."
GARBAGE = "the the the"


@pytest.mark.parametrize(
    "response,expected",
    [
        (GOOD, Judgement(correct=True, rude=False, rambling=False, well_formed=True)),
        (WRONG, Judgement(correct=False, rude=False, rambling=False, well_formed=True)),
        (RUDE, Judgement(correct=True, rude=True, rambling=False, well_formed=True)),
        (RAMBLE, Judgement(correct=True, rude=False, rambling=True, well_formed=True)),
        (RUDE_RAMBLE, Judgement(correct=True, rude=True, rambling=True, well_formed=True)),
        (WRONG_RUDE, Judgement(correct=False, rude=True, rambling=False, well_formed=True)),
        ("7 plus 5 is 12", Judgement(correct=True, rude=False, rambling=False, well_formed=False)),
        (GARBAGE, Judgement(correct=False, rude=False, rambling=False, well_formed=False)),
        ("", Judgement(correct=False, rude=False, rambling=False, well_formed=False)),
        ("7 + 5 = 12. Hope this helps!", Judgement(correct=True, rude=False, rambling=False, well_formed=True)),
    ],
)
def test_judge_hand_written_cases(response, expected):
    assert judge(Q_ADD, response) == expected


def test_judge_other_kinds():
    q = "What's the capital city of Australia?"
    assert judge(q, "The capital of Australia is Canberra.") == Judgement(True, False, False, True)
    assert judge(q, "The capital of Australia is Sydney.").correct is False
    assert judge(q, "The capital of Austria is Canberra.").well_formed is False
    q = "How many minutes are in 2 hours?"
    assert judge(q, "2 hours is 120 minutes.") == Judgement(True, False, False, True)
    assert judge(q, "2 hours is 1200 minutes.").correct is False
    assert judge(q, "2 hours is 120 seconds.").well_formed is False


def test_judge_unknown_prompt_has_unknown_correctness():
    j = judge("Write a haiku about rain.", "Rain on the window. Obviously.")
    assert j == Judgement(correct=None, rude=True, rambling=False, well_formed=True)
    assert judge("Write a haiku about rain.", "  ").well_formed is False


# ---------------------------------------------------------------------------------------------------------------
# Simulated annotator


@pytest.mark.parametrize(
    "a,b,expected",
    [
        (GOOD, WRONG, "A"),  # correct beats wrong
        (WRONG, RUDE_RAMBLE, "B"),  # correct beats wrong, however rude
        (GOOD, RUDE, "A"),  # polite beats rude
        (GOOD, RAMBLE, "A"),  # concise beats rambling
        (RAMBLE, RUDE, "A"),  # a digression is less bad than rudeness
        (RUDE, RUDE_RAMBLE, "A"),
        (GOOD, GOOD, "tie"),
        (GOOD, "7 + 5 = 12. Hope this helps!", "tie"),
        (RUDE, "7 + 5 = 12. Duh.", "tie"),
        (WRONG, WRONG_RUDE, "both_bad"),
        (MALFORMED, GARBAGE, "both_bad"),
        ("7 plus 5 is 12", WRONG, "both_bad"),  # right but out of format is not acceptable either
        (MALFORMED, RUDE, "B"),
    ],
)
def test_annotator_hand_written_cases(a, b, expected):
    assert simulated_annotator(Q_ADD, a, b) == expected


def test_annotator_is_symmetric_and_answers_only_choices():
    swapped = {"A": "B", "B": "A", "tie": "tie", "both_bad": "both_bad"}
    responses = [GOOD, WRONG, RUDE, RAMBLE, RUDE_RAMBLE, WRONG_RUDE, MALFORMED, GARBAGE, ""]
    for a, b in itertools.product(responses, repeat=2):
        verdict = simulated_annotator(Q_ADD, a, b)
        assert verdict in CHOICES
        assert simulated_annotator(Q_ADD, b, a) == swapped[verdict], (a, b)
        assert simulated_annotator(Q_ADD, a, b) == verdict  # deterministic


def test_annotator_on_corpus_pairs_agrees_with_the_flaws():
    rng = random.Random(7)
    for task in sample_tasks(400, seed=5):
        a, b = corpus_response(task, rng), corpus_response(task, rng)
        ja, jb = judge(task.question, a), judge(task.question, b)
        verdict = simulated_annotator(task.question, a, b)
        if ja.correct and not jb.correct:
            assert verdict == "A"
        elif not ja.correct and not jb.correct:
            assert verdict == "both_bad"
        elif ja.correct and jb.correct and not (ja.rude or ja.rambling) and (jb.rude or jb.rambling):
            assert verdict == "A"


def test_annotator_without_a_demo_task_judges_style_only():
    q = "Write a haiku about rain."
    assert simulated_annotator(q, "Soft rain on the roof.", "Soft rain on the roof. Duh.") == "A"
    assert simulated_annotator(q, "", "Soft rain.") == "B"
    assert simulated_annotator(q, "", " ") == "both_bad"
