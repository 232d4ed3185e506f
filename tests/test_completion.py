"""Pieces of a chat completion that need no model: which task a text asks for, the streamed
text that never takes anything back, stop strings, and the request's sampling settings."""

from __future__ import annotations

import pytest

from nanoemox.decoding import Decoding
from nanoemox.inference.completion import CompletionRequest, with_sampling
from nanoemox.inference.streaming import AnswerText, cut_at_stop
from nanoemox.tasks import get_task
from nanoemox.tasks.requests import read_request

ERG_ANSWER = get_task("erg").format_target({
    "event_scenario": "the speaker failed an exam", "speaker_emotion": "sad",
    "emotion_cause": "weeks of study came to nothing", "goal_to_response": "comfort",
    "reply": "I am so sorry. Do you want to talk about it?"})


@pytest.mark.parametrize("task", ["msa", "mer", "ovmer", "eri", "mir", "erg"])
def test_every_instruction_is_read_back_with_its_subtitle(task):
    for variant in range(len(get_task(task).templates)):
        asked = read_request(get_task(task).instruction(variant=variant) + "\n  I cannot believe it!")
        assert asked is not None and (asked.task, asked.text, asked.candidates) == (task, "I cannot believe it!", None)


@pytest.mark.parametrize("task", ["mer", "mir"])
def test_listed_candidates_are_read_back(task):
    labels = ["pleasantly surprised", "tired"]
    for variant in range(len(get_task(task).candidate_templates)):
        text = get_task(task).instruction(variant=variant, candidates=labels)
        asked = read_request("Oh wow. " + text.replace(" ", "\n", 2).upper())  # any case, any spacing
        assert asked.task == task and asked.text == "Oh wow." and [c.lower() for c in asked.candidates] == labels


def test_identifiers_and_free_text():
    assert read_request("[recognition]   I won!") .task == "mer"
    assert read_request("[Recog_OV] I won!").task == "ovmer"
    assert read_request("[Interaction] I lost my keys") == read_request("[Interaction] I lost my keys")
    assert read_request("[Interaction] I lost my keys").text == "I lost my keys"
    assert read_request("[Intent]").text is None
    assert read_request("I lost my job today") is None
    assert read_request("   ") is None and read_request(None) is None


def test_streamed_text_adds_up_to_the_answer_character_by_character():
    raw = "  " + ERG_ANSWER + " \n"
    text = AnswerText("erg")
    reasoning, content = "", ""
    for end in range(1, len(raw) + 1):
        r, c = text.update(raw[:end])
        reasoning, content = reasoning + r, content + c
        assert "<" not in reasoning + content  # no tag and no part of one is ever sent
    final = text.finish(raw)
    reasoning, content = reasoning + final.reasoning_delta, content + final.content_delta
    think = ERG_ANSWER.split("<think>")[1].split("</think>")[0]
    assert (reasoning, content) == (final.reasoning, final.content) == (think, "I am so sorry. Do you want to talk about it?")


def test_a_stop_string_is_never_sent_in_part():
    text = AnswerText("eri", stop=["STOP"])
    sent = ""
    for end in range(1, len("the cause is clear STOP and more") + 1):
        sent += text.update("the cause is clear STOP and more"[:end])[1]
        assert "S" not in sent
    final = text.finish("the cause is clear STOP and more")
    assert sent + final.content_delta == final.content == "the cause is clear" and final.stopped
    assert cut_at_stop("a b c", ["c", "b"]) == ("a ", True) and cut_at_stop("abc", ["x"]) == ("abc", False)


def test_an_echoed_identifier_is_held_back_and_dropped():
    text = AnswerText("erg")
    sent = ""
    raw = "[Interaction] I hear you."
    for end in range(1, len(raw) + 1):
        sent += text.update(raw[:end])[1]
    final = text.finish(raw)
    assert sent + final.content_delta == final.content == "I hear you."


def test_sampling_settings_of_a_request():
    server = Decoding(max_new_tokens="eri=40", seed=3)
    assert with_sampling(server, temperature=None, top_p=0.5, seed=None).do_sample is False  # greedy, as the CLI
    assert with_sampling(server, temperature=0, top_p=None, seed=9).do_sample is False
    sampled = with_sampling(server, temperature=0.7, top_p=0.9, seed=None)
    assert (sampled.do_sample, sampled.temperature, sampled.top_p, sampled.seed) == (True, 0.7, 0.9, 3)
    assert with_sampling(server, temperature=0.7, top_p=None, seed=11).seed == 11
    assert sampled.budget("eri") == 40  # the server's budgets stay
    with pytest.raises(ValueError, match="unknown task"):
        CompletionRequest(task="dreams")
    with pytest.raises(ValueError, match="history turn 0"):
        CompletionRequest(history=[{"role": "user", "text": "hi"}])
    assert CompletionRequest(task="mer").offered() == get_task("mer").default_candidates()
    assert CompletionRequest(task="mir", candidates=[" a ", "a", "b"]).offered() == ["a", "b"]
    assert CompletionRequest(task="eri").offered() is None
