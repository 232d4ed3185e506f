"""Text helpers that turn free generated text into labels, word lists and ERG parts.

Everything here is total: any string (or None) comes back as a result or None,
never an exception, because evaluation feeds it whatever the model produced.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable, Sequence

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S | re.I)
# "the emotion of the speaker is X": a few filler words may sit before the label.
_SPEAKER_EMOTION_RE = re.compile(
    r"the\s+emotion\s+of\s+the\s+speaker\s+is\s*[:\-]?\s*[\"'*]*"
    r"(?:(?:a|an|very|quite|rather|mostly|mainly|feeling|probably|likely)\s+)*"
    r"([a-z][a-z'\-]*)",
    re.I,
)
_NEGATORS = ("not", "no", "never", "without", "isn't", "wasn't", "aren't", "n't")

# Surface forms that should count as the same label when no exact label word occurs.
_VARIANT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("anger", "angry", "angered", "mad"),
    ("sad", "sadness", "sorrow", "sorrowful"),
    ("happy", "happiness", "glad"),
    ("joy", "joyful", "joyous"),
    ("surprise", "surprised", "surprising"),
    ("fear", "fearful", "afraid", "scared"),
    ("disgust", "disgusted", "disgusting"),
    ("worried", "worry", "worrying"),
    ("neutral", "neutrality", "calm"),
    ("positive", "positivity"),
    ("negative", "negativity"),
    ("apologise", "apologize", "apology", "apologising", "apologizing"),
    ("criticize", "criticise", "criticism", "criticizing", "criticising"),
    ("complain", "complaint", "complaining"),
    ("thank", "thanks", "thanking", "gratitude"),
    ("greet", "greeting"),
    ("joke", "joking"),
    ("praise", "praising"),
    ("taunt", "taunting"),
    ("flaunt", "flaunting"),
    ("agree", "agreement", "agreeing"),
    ("oppose", "opposition", "opposing"),
    ("comfort", "comforting"),
    ("inform", "informing"),
    ("advise", "advice", "advising"),
    ("introduce", "introduction", "introducing"),
    ("prevent", "preventing"),
    ("invite", "invitation", "inviting"),
    ("refuse", "refusal", "refusing"),
    ("warn", "warning"),
    ("explain", "explanation", "explaining"),
    ("confirm", "confirmation", "confirming"),
    ("doubt", "doubting"),
    ("emphasize", "emphasise", "emphasis"),
    ("acknowledge", "acknowledgement", "acknowledgment"),
)
_VARIANT_KEY = {word: group[0] for group in _VARIANT_GROUPS for word in group}


def normalise(text: str | None) -> str:
    """Lower-case, keep letters/digits/apostrophes/hyphens, collapse whitespace."""
    if not text:
        return ""
    text = str(text).lower().replace("\u2019", "'")
    text = re.sub(r"[^\w'\-]+", " ", text)
    return " ".join(text.replace("_", " ").split())


def _identifier_pattern() -> re.Pattern:
    """Every registered task's identifier spellings (a model may echo one), any case."""
    from nanoemox.tasks.registry import TASKS  # here: the registry imports the tasks, which import this module

    return _spellings_pattern(tuple(spelling for task in TASKS.values() for spelling in task.identifiers))


@functools.lru_cache(maxsize=16)
def _spellings_pattern(spellings: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(re.escape(s) for s in spellings) or r"(?!)", re.I)


def strip_identifiers(text: str | None) -> str:
    """Drop echoed task identifiers and chat markers from a generated answer."""
    if not text:
        return ""
    text = _identifier_pattern().sub(" ", str(text))
    # Anything after a new turn marker was not part of this answer.
    text = re.split(r"###\s*(?:human|assistant)\s*:?", text, flags=re.I)[0]
    return text.strip()


def _tokens(text: str) -> list[str]:
    return normalise(text).split()


def _occurrences(tokens: Sequence[str], phrase: Sequence[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(tokens) - n + 1) if list(tokens[i:i + n]) == list(phrase)]


def _negated(tokens: Sequence[str], start: int) -> bool:
    """True when one of the two words before `start` negates it ("not happy")."""
    before = tokens[max(0, start - 2):start]
    return any(w in _NEGATORS or w.endswith("n't") for w in before)


def _first_position(tokens: Sequence[str], phrase: Sequence[str]) -> int | None:
    for i in _occurrences(tokens, phrase):
        if not _negated(tokens, i):
            return i
    return None


def _variant_tokens(tokens: Iterable[str]) -> list[str]:
    return [_VARIANT_KEY.get(t, t) for t in tokens]


def fold_variant(word: str | None) -> str | None:
    """A label word folded onto its variant group's first form ("angry" -> "anger", "Glad" -> "happy").

    The same folding `find_label` applies; a word of no group comes back normalised
    (lower-case); None and empty text give None.
    """
    key = normalise(word)
    return _VARIANT_KEY.get(key, key) or None


def find_label(text: str | None, labels: Sequence[str]) -> str | None:
    """The label of `labels` that the text names first, or None.

    An exact match of the whole answer wins; otherwise the earliest non-negated
    whole-word occurrence (longer labels first on ties), then the same search with
    word variants folded together ("angry" finds "anger"). Returns the label as given.
    """
    if not text or not labels:
        return None
    tokens = _tokens(text)
    keyed = [(label, _tokens(label)) for label in labels if _tokens(label)]
    whole = " ".join(tokens).strip(" .")
    for label, ltoks in keyed:
        if whole == " ".join(ltoks):
            return label
    for fold in (False, True):
        toks = _variant_tokens(tokens) if fold else tokens
        best: tuple[int, int, str] | None = None
        for label, ltoks in keyed:
            ltoks = _variant_tokens(ltoks) if fold else ltoks
            pos = _first_position(toks, ltoks)
            if pos is not None and (best is None or (pos, -len(ltoks)) < best[:2]):
                best = (pos, -len(ltoks), label)
        if best is not None:
            return best[2]
    return None


def short_answer(text: str | None, max_words: int = 3) -> str | None:
    """The answer itself when it is a short phrase (after common lead-ins), else None."""
    cleaned = normalise(strip_identifiers(text))
    cleaned = re.sub(
        r"^(?:the\s+)?(?:answer|emotion|intent|label|sentiment)\s+(?:is|would be)\s+", "", cleaned
    )
    words = cleaned.split()
    if not words or len(words) > max_words:
        return None
    return " ".join(words)


_LIST_FILLERS = {
    "and", "or", "also", "a", "an", "the", "some", "slight", "slightly", "very", "quite",
    "somewhat", "bit", "of", "little", "mild", "mildly", "feeling", "feels", "feel", "is",
    "are", "seems", "appears", "to", "be", "with", "hint", "sense", "possibly", "maybe",
    "person", "speaker", "character", "he", "she", "they", "seem", "looks", "look", "i",
    "think", "emotions", "emotion", "feelings", "shows", "expresses",
}


def split_word_list(text: str | None, max_words_per_item: int = 3) -> list[str]:
    """Split a free-form list of emotions into clean, unique, lower-case items.

    Items are separated by commas, semicolons, slashes, new lines or "and"; a label
    line such as "Emotions: a, b" keeps only the part after the colon. Leading and
    trailing filler words are dropped and items longer than `max_words_per_item`
    (sentences rather than words) are discarded.
    """
    body = strip_identifiers(text)
    if not body:
        return []
    body = _THINK_RE.sub(" ", body)
    if ":" in body:
        body = body.rsplit(":", 1)[1]
    parts = re.split(r"[,;/\n|]+|\band\b|\bor\b|\.\s", body, flags=re.I)
    items: list[str] = []
    for part in parts:
        words = normalise(part).split()
        while words and words[0] in _LIST_FILLERS:
            words.pop(0)
        while words and words[-1] in _LIST_FILLERS:
            words.pop()
        if not words or len(words) > max_words_per_item:
            continue
        item = " ".join(words).strip("-'")
        if item and item not in items:
            items.append(item)
    return items


def split_think(text: str | None) -> tuple[str | None, str]:
    """Split an ERG answer into (reasoning inside <think>, reply after it).

    Without a <think> block the whole text is the reply; an unclosed <think> makes the
    rest of the text the reasoning and leaves the reply empty.
    """
    body = strip_identifiers(text)
    match = _THINK_RE.search(body)
    if match:
        return match.group(1).strip(), body[match.end():].strip()
    opened = re.search(r"<think>", body, re.I)
    if opened:
        return body[opened.end():].strip(), ""
    return None, body.replace("</think>", "").strip()


def speaker_emotion(text: str | None) -> str | None:
    """The X in "the emotion of the speaker is X", lower-case, or None."""
    if not text:
        return None
    match = _SPEAKER_EMOTION_RE.search(str(text))
    return match.group(1).lower().strip("'-") if match else None
