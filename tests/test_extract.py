"""Emotion-word extraction from free text: the built-in extractor and the LLM one."""

from __future__ import annotations

import pytest

from nanoemox.eval.extract import EmotionExtractor, LLMExtractor, parse_word_list
from nanoemox.eval.llm import LLMClient, LLMConfig
from nanoemox.eval.testing import FakeChatServer
from nanoemox.metrics import hit_rate


@pytest.fixture(scope="module")
def extractor() -> EmotionExtractor:
    return EmotionExtractor()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The speaker is happy and excited.", ["happy", "excited"]),
        ("Happy, HAPPY, happy!", ["happy"]),
        ("She seems anxious, maybe frightened.", ["anxious", "frightened"]),
        # Negation within the clause drops the word; a new clause resets it.
        ("He is not happy.", []),
        ("She isn't angry at all, but clearly sad.", ["sad"]),
        ("There is no sign of fear in her face; she looks calm.", ["calm"]),
        ("He never seemed worried", []),
        ("She does not look at all surprised", []),
        ("Not angry. Furious!", ["furious"]),
        # Multi-word vocabulary entries win over their parts.
        ("She was at a loss for words and totally grossed out.", ["at a loss for words", "grossed out"]),
        ("I don\u2019t care any more", ["don't care"]),
        # Everyday words in the form table are ignored by default.
        ("Let's go, I lost my keys here", []),
        ("", []),
        (None, []),
    ],
)
def test_builtin_extractor(extractor, text, expected):
    assert extractor.extract(text) == expected


def test_stopwords_are_configurable():
    assert EmotionExtractor(stopwords=()).extract("I lost my keys") == ["lost"]


def test_extracted_words_feed_the_wheel_metric(extractor):
    outputs = ["I think the person feels joyful.", "He is not angry; he is sad.", "Hard to tell."]
    words = extractor.extract_many(outputs)
    # joyful ~ happy on all wheels (hit); sad vs angry misses; nothing vs worried misses.
    assert hit_rate(words, ["happy", "angry", "worried"])["score"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("nervous, scared", ["nervous", "scared"]),
        ("Answer: Nervous, scared and a bit tense.\nBecause...", ["nervous", "scared", "tense"]),
        ('["happy", "sad"]', ["happy", "sad"]),
        ("none", []),
        ("   ", []),
    ],
)
def test_parse_word_list(reply, expected):
    assert parse_word_list(reply) == expected


def test_llm_extractor_uses_template_and_survives_failures(tmp_path):
    def respond(body, i):
        text = body["messages"][0]["content"].rsplit("Text:", 1)[1]
        if "explode" in text:
            return (500, "boom")
        return "Happy, relieved" if "smiles" in text else "none"

    template = tmp_path / "my_prompt.txt"
    template.write_text("List emotions.\nText: $text\nAnswer:")
    with FakeChatServer(respond) as server:
        config = LLMConfig(url=server.url, model="x", max_retries=1, backoff_s=0.01, timeout_s=2)
        with LLMClient(config) as client:
            llm = LLMExtractor(client, template=template)
            out = llm.extract_many(["She smiles widely.", "A car passes.", "explode"])
    assert out == [["happy", "relieved"], [], []]
    assert llm.failures == 1
    assert server.requests[0]["messages"][0]["content"].startswith("List emotions.")
