"""Free-form answers -> positive / negative / neutral, the way MER-UniBench scores MSA.

Nano-EmoX's training mixture holds no MSA task (neither does the paper's), so on MOSI,
MOSEI, SIMS and SIMSv2 the model answers with emotions ("she sounds happy and
relaxed"), not with a sentiment word. The reference (AffectGPT) turns the answer into
emotion words and then those words into a sentiment, both with an LLM. Here each
answer goes the first way that applies, and the way is recorded per sample:

1. `direct`: the answer names a sentiment itself ("positive", "negative", "neutral");
2. `lexicon` (offline default): emotion words from the extractor, then their summed
   valence in the VADER lexicon (`nanoemox.metrics.valence`);
   `llm` (with `--extractor llm`): emotion words from the LLM extractor, then one more
   LLM call with the `words_to_sentiment` prompt;
3. `none`: no emotion word found (or, on the LLM route, a failed request: counted in
   `failures`), which is `neutral` and therefore counts as negative in the binary WAF.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from typing import Sequence

from nanoemox.eval.llm import LLMError, load_template, user_message
from nanoemox.metrics.valence import CITATION, words_sentiment
from nanoemox.tasks import SENTIMENT_TASK, SENTIMENTS, get_task

log = logging.getLogger(__name__)


def _direct(text: str | None) -> str | None:
    return get_task(SENTIMENT_TASK).parse(text) if text else None


class LexiconSentiment:
    """Offline: emotion words (any extractor) -> VADER valence -> sentiment."""

    route = "lexicon"
    description = f"emotion words mapped to sentiment by the {CITATION}"

    def __init__(self, extractor):
        self.extractor = extractor
        self.failures = 0

    def _from_words(self, words: list[list[str]]) -> list[tuple[str, str]]:
        out = []
        for found in words:
            label, _, rated = words_sentiment(found)
            out.append((label, self.route if rated else "none"))
        return out

    def classify_many(self, texts: Sequence[str | None]) -> list[tuple[str, str]]:
        """(sentiment, route) per text, in order."""
        results: list[tuple[str, str] | None] = [None] * len(texts)
        indirect = []
        for i, text in enumerate(texts):
            direct = _direct(text)
            if direct is not None:
                results[i] = (direct, "direct")
            else:
                indirect.append(i)
        words = self.extractor.extract_many([texts[i] for i in indirect]) if indirect else []
        for i, result in zip(indirect, self._from_words(words)):
            results[i] = result
        return results  # type: ignore[return-value]


class LLMSentiment(LexiconSentiment):
    """As the reference: LLM emotion words, then an LLM decides the sentiment of those words."""

    route = "llm"
    description = "emotion words mapped to sentiment by the LLM (words_to_sentiment prompt)"

    def __init__(self, client, extractor, template: str | os.PathLike = "words_to_sentiment"):
        super().__init__(extractor)
        self.client = client
        self.template = load_template(template, required=["words"])

    def _from_words(self, words: list[list[str]]) -> list[tuple[str, str]]:
        asked = [i for i, found in enumerate(words) if found]
        replies = self.client.chat_many([user_message(self.template, words=", ".join(words[i])) for i in asked],
                                        temperature=0.0) if asked else []
        out = [("neutral", "none")] * len(words)
        for i, reply in zip(asked, replies):
            label = None if isinstance(reply, LLMError) else _first_sentiment(reply)
            if label is None:
                self.failures += 1
                log.warning("sentiment of %s: no usable LLM reply (%s)", words[i],
                            reply if isinstance(reply, LLMError) else repr(reply[:60]))
                out[i] = ("neutral", "none")
            else:
                out[i] = (label, self.route)
        return out


def _first_sentiment(reply: str) -> str | None:
    match = re.search(r"\b(" + "|".join(SENTIMENTS) + r")\b", reply.lower())
    return match.group(1) if match else None


def sentiment_classifier(extractor):
    """The classifier that matches an extractor: the LLM route for an LLM extractor, else the lexicon."""
    client = getattr(extractor, "client", None)
    return LLMSentiment(client, extractor) if client is not None else LexiconSentiment(extractor)


def route_counts(routes: Sequence[str]) -> dict[str, int]:
    return dict(Counter(routes))
