"""MSA scored as MER-UniBench scores it: free-form answer -> emotion words -> sentiment -> WAF."""

from __future__ import annotations

import pytest

from nanoemox.data.manifest import Record
from nanoemox.eval.extract import EmotionExtractor, LLMExtractor
from nanoemox.eval.llm import LLMError
from nanoemox.eval.scoring import score_predictions
from nanoemox.eval.sentiment import LexiconSentiment, LLMSentiment, sentiment_classifier
from nanoemox.metrics.valence import load_lexicon, word_valence, words_sentiment


def _mosi(vals):
    return [Record(f"mosi_{i}", "MOSI", "test", "msa", {}, target=v) for i, v in enumerate(vals)]


def test_vader_lexicon_gives_emotion_words_their_sign():
    assert len(load_lexicon()) > 7000
    assert word_valence("happy") > 0 and word_valence("relaxed") > 0 and word_valence("worried") < 0
    assert word_valence("a bit annoyed") < 0 and word_valence("zzzz") is None
    assert words_sentiment(["happy", "nervous"])[0] == "positive"   # 2.7 - 1.1
    assert words_sentiment(["sad", "lonely", "calm"])[0] == "negative"
    assert words_sentiment([])[0] == "neutral"


def test_emotion_answers_score_by_their_valence_not_as_negative():
    records = _mosi([1.5, 2.0, -0.8, -2.2, 0.0])
    predictions = {"mosi_0": "She seems happy and relaxed.", "mosi_1": "positive",
                   "mosi_2": "He sounds worried, maybe a little sad.", "mosi_3": "The man is furious.",
                   "mosi_4": "happy"}
    result = score_predictions("mer-unibench", predictions, records)
    (column,) = [c for c in result["columns"] if c["name"] == "MOSI"]
    assert column["value"] == pytest.approx(100.0)          # before: "happy" counted as negative
    assert column["details"]["counted"] == 4                 # valence 0 is left out
    assert column["details"]["routes"] == {"lexicon": 4, "direct": 1}
    assert "VADER" in column["details"]["note"]


def test_answers_without_emotion_words_are_neutral_and_count_as_negative():
    records = _mosi([1.0, -1.0])
    result = score_predictions("mer-unibench", {"mosi_0": "The street at night.", "mosi_1": "A table."}, records)
    (column,) = [c for c in result["columns"] if c["name"] == "MOSI"]
    assert column["details"]["routes"] == {"none": 2}
    assert column["details"]["accuracy"] == pytest.approx(0.5)


class FakeClient:
    """Answers the extraction prompt with the words after 'Text:' and the sentiment prompt by keyword."""

    def __init__(self, fail_on: str | None = None):
        self.prompts: list[str] = []
        self.fail_on = fail_on

    def chat_many(self, conversations, **params):
        replies = []
        for conv in conversations:
            prompt = conv[-1]["content"]
            self.prompts.append(prompt)
            tail = [line for line in prompt.splitlines() if line.startswith(("Text:", "Words:"))][-1]
            if self.fail_on and self.fail_on in tail:
                replies.append(LLMError("HTTP 500 from the endpoint"))
            elif tail.startswith("Text:"):
                replies.append(tail.split("who is", 1)[-1].strip(" .") or "none")
            else:
                replies.append("Negative." if "gloomy" in tail else "positive")
        return replies


def test_llm_route_asks_words_then_sentiment_and_counts_failures():
    client = FakeClient(fail_on="broken")
    extractor = LLMExtractor(client)
    classifier = sentiment_classifier(extractor)
    assert isinstance(classifier, LLMSentiment)
    records = _mosi([1.0, -1.0, 1.0, 1.0])
    predictions = {"mosi_0": "someone who is cheerful", "mosi_1": "someone who is gloomy",
                   "mosi_2": "neutral", "mosi_3": "someone who is broken"}
    result = score_predictions("mer-unibench", predictions, records, extractor=extractor)
    (column,) = [c for c in result["columns"] if c["name"] == "MOSI"]
    assert column["details"]["routes"] == {"llm": 2, "direct": 1, "none": 1}
    assert any(p.startswith("You are given emotion words") and "Words: gloomy" in p for p in client.prompts)
    assert "LLM" in column["details"]["note"]
    assert column["details"]["accuracy"] == pytest.approx(0.5)  # the direct neutral and the failure are wrong


def test_lexicon_is_the_default_for_the_builtin_extractor():
    assert isinstance(sentiment_classifier(EmotionExtractor()), LexiconSentiment)


def test_the_table_says_which_route_scored_the_msa_answers():
    from nanoemox.eval.scoring import markdown_table

    records = _mosi([1.0, -1.0])
    result = score_predictions("mer-unibench", {"mosi_0": "positive", "mosi_1": "he is sad"}, records)
    assert "MSA answers: 1 named a sentiment, 1 through emotion words and the VADER lexicon." in markdown_table(result)
