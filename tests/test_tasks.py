"""Task registry: identifiers, instructions, answer formats, parsers and label sets."""

from __future__ import annotations

import random

import pytest

from nanoemox.tasks import TASKS, get_task, label_set, task_from_identifier
from nanoemox.tasks.labels import AVAMERG_COARSE, AVAMERG_FINE, AVAMERG_FINE_TO_COARSE, coarse_emotion


def test_registry_order_and_identifiers():
    assert list(TASKS) == ["msa", "mer", "ovmer", "eri", "mir", "erg"]
    expected = {"msa": "", "mer": "[Recognition]", "ovmer": "[Recog_OV]", "eri": "[Inference]",
                "mir": "[Intent]", "erg": "[Interaction]"}
    assert {n: t.identifier for n, t in TASKS.items()} == expected
    assert get_task("MER") is TASKS["mer"]


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="msa, mer, ovmer, eri, mir, erg"):
        get_task("sentiment")


@pytest.mark.parametrize("name", list(TASKS))
def test_instruction_variants(name):
    task = get_task(name)
    assert len(task.templates) >= 3
    assert len(set(task.templates)) == len(task.templates)
    text = task.instruction()
    assert text.startswith(task.identifier)
    assert text == task.instruction(variant=0)
    assert "{" not in text and "}" not in text
    seen = {task.instruction(rng=random.Random(s)) for s in range(40)}
    assert len(seen) > 1  # training draws several paraphrases
    with pytest.raises(ValueError):
        task.instruction(variant=len(task.templates))


@pytest.mark.parametrize("name", ["mer", "mir"])
def test_candidate_form_lists_candidates(name):
    task = get_task(name)
    cands = ["alpha", "beta gamma", "delta"]
    text = task.instruction(candidates=cands)
    assert "alpha, beta gamma, delta" in text
    assert "{" not in text
    assert text != task.instruction()
    for seed in range(10):
        assert "alpha, beta gamma, delta" in task.instruction(candidates=cands, rng=random.Random(seed))


def test_msa_format_and_parse():
    msa = get_task("msa")
    assert msa.identifier == ""
    assert [msa.format_target(v) for v in (1.4, -0.2, 0.0, 0, "Positive")] == [
        "positive", "negative", "neutral", "neutral", "positive"]
    with pytest.raises(ValueError):
        msa.format_target("happy")
    assert msa.parse("The overall sentiment is NEGATIVE.") == "negative"
    assert msa.parse("It is not positive; I would say neutral.") == "neutral"
    assert msa.parse("no idea") is None


def test_label_parse_prefers_candidates():
    mer = get_task("mer")
    assert mer.parse("Happy.") == "happy"
    assert mer.parse("[Recognition] The person looks quite angry to me.",
                     candidates=["anger", "happy", "sad"]) == "anger"
    assert mer.parse("They are sad, maybe a little happy", candidates=["happy", "sad"]) == "sad"
    assert mer.parse("not happy at all, clearly worried", candidates=["happy", "worried"]) == "worried"
    assert mer.parse("joy", candidates=["joy", "sadness"]) == "joy"
    assert mer.parse("a long rambling sentence without any label at all") is None
    mir = get_task("mir")
    cands = label_set("mintrec")
    assert mir.parse("The speaker wants to ask for help here.", cands) == "ask for help"
    assert mir.parse("Apologizing.", cands) == "apologise"
    assert mir.parse("Intent: Complain", None) == "complain"


@pytest.mark.parametrize("text", [None, "", "}{[]<think>", "\x00\n\t", "###Assistant: " * 5, "a" * 5000])
def test_parsers_never_raise(text):
    for task in TASKS.values():
        task.parse(text)
        task.parse(text, candidates=["happy", "sad"])


def test_ovmer_format_and_parse():
    ov = get_task("ovmer")
    assert ov.format_target(["Happy", "excited", "happy"]) == "happy, excited"
    assert ov.parse(ov.format_target(["worried", "nervous"])) == ["worried", "nervous"]
    assert ov.parse("[Recog_OV] Emotions: joyful; a bit excited and slightly nervous.") == [
        "joyful", "excited", "nervous"]
    assert ov.parse("The person seems happy and a little excited.") == ["happy", "excited"]
    assert ov.parse("") == []


def test_eri_parse_cleans_text():
    eri = get_task("eri")
    assert eri.format_target("  The man   frowns.\n") == "The man frowns."
    assert eri.parse("[Inference]  He frowns <think>x</think> and sighs.###Human: next") == \
        "He frowns x and sighs."


def test_erg_round_trip():
    erg = get_task("erg")
    target = {"event_scenario": "She lost her job.", "speaker_emotion": "Devastated",
              "emotion_cause": "no income", "goal_to_response": "comfort her",
              "reply": "I'm so sorry,   that is hard."}
    text = erg.format_target(target)
    assert text.startswith("<think>") and "</think>" in text
    assert "the emotion of the speaker is devastated" in text
    parsed = erg.parse(text)
    assert parsed["emotion"] == "devastated"
    assert parsed["reply"] == "I'm so sorry, that is hard."
    assert "no income" in parsed["think"]
    assert erg.parse("just a reply") == {"think": None, "reply": "just a reply", "emotion": None}
    assert erg.parse("<think>The emotion of the speaker is: a lonely")["emotion"] == "lonely"
    with pytest.raises(ValueError, match="reply"):
        erg.format_target({k: v for k, v in target.items() if k != "reply"})


def test_identifier_spellings():
    assert task_from_identifier("[Recogn_OV] list emotions") == "ovmer"
    assert get_task("ovmer").parse("[Recogn_OV] happy, sad") == ["happy", "sad"]
    assert task_from_identifier(get_task("ovmer").instruction()) == "ovmer"
    assert task_from_identifier(get_task("msa").instruction()) is None


def test_label_sets():
    assert label_set("FERV39K") == ["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert len(label_set("CREMA-D")) == 6 and "surprise" not in label_set("cremad")
    assert len(label_set("mintrec")) == 20
    m2 = label_set("MIntRec2.0")
    assert len(m2) == 31 and m2[-1] == "UNK" and len(set(m2)) == 31
    assert set(label_set("mintrec")) <= set(m2)
    assert len(AVAMERG_FINE) == 32 and len(AVAMERG_COARSE) == 8 and "neutral" in AVAMERG_COARSE
    assert set(AVAMERG_FINE) <= set(AVAMERG_FINE_TO_COARSE)
    assert set(AVAMERG_FINE_TO_COARSE.values()) <= set(AVAMERG_COARSE)
    assert coarse_emotion("Joyful") == "happy" and coarse_emotion("worried") == "sad"
    assert coarse_emotion("no-such-emotion") is None
    with pytest.raises(ValueError, match="unknown label set"):
        label_set("nope")
    first = label_set("meld")
    first.append("x")
    assert "x" not in label_set("meld")
