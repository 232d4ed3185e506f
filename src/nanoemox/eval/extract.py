"""Turn free-form model output into a list of emotion words.

Two extractors share one interface, `extract(text) -> list[str]` and
`extract_many(texts) -> list[list[str]]`:

- `EmotionExtractor` (default, deterministic, offline): finds every word or phrase
  of the emotion-wheel vocabulary (wheel words, their synonyms and all their word
  forms, multi-word phrases such as "at a loss" included) and drops words that are
  negated within their clause ("not happy", "isn't angry", "no sign of fear").
- `LLMExtractor`: asks an OpenAI-compatible model with a replaceable prompt
  template, as the reference benchmark does.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Iterable, Sequence

from nanoemox.eval.llm import LLMClient, LLMError, load_template, user_message
from nanoemox.metrics.wheel import WheelTables, load_tables

log = logging.getLogger(__name__)

# Surface forms in the word-form table that are mostly everyday non-emotional words;
# matching them in free text would add noise ("I lost my keys", "let's go").
DEFAULT_STOPWORDS = frozenset(
    """go goes going gone goner goners went see seen sees seeing saw use used uses using
    left lefts leave leaves live lived lives living list listed lists move moved moves
    moving mover movers face faced faces facing play played plays here heres person
    member speech center centre color colors art arts artist bit bar bars barred cut cuts
    cover covers drive driven drives drove driver fire fired fires firing test tested
    tests throw threw thrown throws touch value values valued mind minds minded sun suns
    sunned spend spends spent rest rests rested press push pushed pushes price prices
    priced root roots rooted link links linked exist exists far fix fixed fixes fixing
    true truer truest weight ground effect affect access aid aids aided aim aims aimed
    direct create invent inform omit notice detect react reacts relate regard attend
    tend tends tended open opened opens close closed closes free freed frees present
    lose loses losing loss losses less lesser lack lacks lacked quick swift rich richer
    salt salted salts clear clears mean means might mights help helps helped low lower
    lowers cold warm soft heavy sharp empty wrong busy void odd odds edge edges power
    powers force forces forced lost emotion emotions thank thanks clearly""".split()
)
NEGATORS = frozenset(
    "not no never nor neither without hardly barely cannot nothing none lacks lacking".split()
)
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]\"\n]+|\b(?:but|however|although|though|whereas|while)\b")
_TOKEN = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_NONE_REPLIES = {"none", "no emotion", "n/a", "nothing"}
_MODIFIER = re.compile(
    r"^(?:a (?:little|bit)(?: of)?|slightly|somewhat|very|quite|really|mildly|extremely|deeply|rather)\s+"
)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.replace("\u2019", "'").replace("\u2018", "'").lower())


def _is_negator(token: str) -> bool:
    return token in NEGATORS or token.endswith("n't")


class EmotionExtractor:
    """Deterministic, dictionary-based emotion word extractor."""

    def __init__(
        self,
        tables: WheelTables | None = None,
        stopwords: Iterable[str] = DEFAULT_STOPWORDS,
        negation_window: int = 4,
        extra_words: Iterable[str] = (),
    ):
        tables = tables or load_tables()
        stop = {s.lower() for s in stopwords}
        self.phrases: dict[tuple[str, ...], str] = {}
        for word in list(tables.forms) + list(extra_words):
            toks = tuple(_tokens(word))
            if toks and word not in stop:
                self.phrases[toks] = " ".join(toks)
        self.max_len = max(len(p) for p in self.phrases)
        self.negation_window = negation_window

    def _clause_words(self, tokens: list[str]) -> list[str]:
        found, i = [], 0
        while i < len(tokens):
            for n in range(min(self.max_len, len(tokens) - i), 0, -1):
                phrase = tuple(tokens[i : i + n])
                if phrase in self.phrases:
                    window = tokens[max(0, i - self.negation_window) : i]
                    if not any(_is_negator(t) for t in window):
                        found.append(self.phrases[phrase])
                    i += n
                    break
            else:
                i += 1
        return found

    def extract(self, text: str | None) -> list[str]:
        """Emotion words of `text` in order of first appearance, without repeats."""
        words: list[str] = []
        for clause in _CLAUSE_BREAK.split((text or "").replace("\u2019", "'")):
            for word in self._clause_words(_tokens(clause)):
                if word not in words:
                    words.append(word)
        return words

    __call__ = extract

    def extract_many(self, texts: Sequence[str | None]) -> list[list[str]]:
        return [self.extract(t) for t in texts]


def parse_word_list(reply: str) -> list[str]:
    """Split an LLM reply such as "nervous, scared." into clean lower-case words."""
    reply = reply.strip().splitlines()[0] if reply.strip() else ""
    reply = re.sub(r"^(answer|emotions?)\s*:\s*", "", reply.strip(), flags=re.IGNORECASE)
    words = []
    for item in re.split(r"[,;/]|\band\b", reply.lower()):
        item = _MODIFIER.sub("", item.strip().strip(".'\"[]()*- ").strip())
        if item and item not in _NONE_REPLIES and item not in words:
            words.append(item)
    return words


class LLMExtractor:
    """Emotion words from an LLM; a failed request yields [] and is counted in `failures`."""

    def __init__(self, client: LLMClient, template: str | os.PathLike = "extract_emotions"):
        self.client = client
        self.template = load_template(template, required=["text"])
        self.failures = 0

    def extract(self, text: str | None) -> list[str]:
        return self.extract_many([text])[0]

    __call__ = extract

    def extract_many(self, texts: Sequence[str | None]) -> list[list[str]]:
        conversations = [user_message(self.template, text=t or "") for t in texts]
        out = []
        for text, reply in zip(texts, self.client.chat_many(conversations)):
            if isinstance(reply, LLMError):
                self.failures += 1
                log.warning("emotion extraction failed for %.60r: %s", text, reply)
                out.append([])
            else:
                out.append(parse_word_list(reply))
        return out
