"""Emotion words -> sentiment, offline, with the VADER lexicon.

MER-UniBench scores MSA (MOSI, MOSEI, SIMS, SIMSv2) by turning a free-form answer
into emotion words and those words into positive / negative / neutral (AffectGPT
does both steps with an LLM) before the weighted F1. This module is the deterministic
stand-in for the second step: each word's valence is looked up in the VADER
sentiment lexicon (Hutto & Gilbert, "VADER: A Parsimonious Rule-based Model for
Sentiment Analysis of Social Media Text", ICWSM 2014; 7,500 entries rated by 10
annotators on -4..+4; the `vaderSentiment` package, MIT licence, ships the file
read here). A multi-word phrase takes the mean of its rated words. The sentiment of a
list of words is the sign of the sum of their valences; a list with no rated word
(or a sum of exactly 0) is neutral.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Iterable

LEXICON_PACKAGE, LEXICON_FILE = "vaderSentiment", "vader_lexicon.txt"
CITATION = ("VADER lexicon (Hutto & Gilbert, ICWSM 2014; vaderSentiment "
            "package, MIT licence)")


@functools.lru_cache(maxsize=1)
def load_lexicon() -> dict[str, float]:
    """word -> mean valence (-4..+4) of the VADER lexicon."""
    try:
        text = resources.files(LEXICON_PACKAGE).joinpath(LEXICON_FILE).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError(f"the VADER lexicon ({LEXICON_PACKAGE}/{LEXICON_FILE}) is not installed: "
                           "pip install vaderSentiment==3.3.2") from exc
    lexicon = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            try:
                lexicon[fields[0].strip().lower()] = float(fields[1])
            except ValueError:
                continue
    return lexicon


def word_valence(word: str) -> float | None:
    """Valence of one emotion word or phrase; None when no part of it is rated."""
    lexicon = load_lexicon()
    word = word.strip().lower()
    if word in lexicon:
        return lexicon[word]
    rated = [lexicon[t] for t in word.replace("-", " ").split() if t in lexicon]
    return sum(rated) / len(rated) if rated else None


def words_sentiment(words: Iterable[str]) -> tuple[str, float, list[str]]:
    """(positive | negative | neutral, summed valence, the words that were rated)."""
    total, rated = 0.0, []
    for word in words:
        value = word_valence(word)
        if value is not None:
            total += value
            rated.append(word)
    label = "positive" if total > 0 else "negative" if total < 0 else "neutral"
    return label, total, rated
