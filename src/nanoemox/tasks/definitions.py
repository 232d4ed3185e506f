"""The six Nano-EmoX tasks: their instruction wording, answer format and parser.

Levels follow the paper: perception (MSA, MER, OV-MER), understanding (ERI, MIR)
and interaction (ERG). MSA carries no identifier, as in the paper; the others open
their instruction with a bracketed identifier such as `[Recognition]`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from nanoemox.tasks import labels as L
from nanoemox.tasks import parsing as P
from nanoemox.tasks.base import Task

SENTIMENTS = ("positive", "negative", "neutral")
ERG_FIELDS = ("event_scenario", "speaker_emotion", "emotion_cause", "goal_to_response", "reply")

# Vocabularies used to recognise a label when the caller gives no candidates.
_EMOTION_VOCAB = tuple(dict.fromkeys(
    L.BASIC7 + L.MER2023 + L.MELD + L.IEMOCAP4 + L.AVAMERG_FINE + L.AVAMERG_COARSE
))
_INTENT_VOCAB = tuple(dict.fromkeys(L.MINTREC2 + L.MINTREC))


@dataclass(frozen=True, repr=False)
class SentimentTask(Task):
    """MSA: positive / negative / neutral; a numeric valence maps by its sign."""

    def format_target(self, target: Any) -> str:
        if isinstance(target, bool):
            raise ValueError(f"msa target must be a number or a sentiment word, got {target!r}")
        if isinstance(target, (int, float)):
            if math.isnan(target):
                raise ValueError("msa target is NaN")
            return "positive" if target > 0 else "negative" if target < 0 else "neutral"
        word = str(target).strip().lower()
        if word not in SENTIMENTS:
            raise ValueError(f"msa target must be one of {SENTIMENTS}, got {target!r}")
        return word

    def parse(self, text: str | None, candidates: Sequence[str] | None = None) -> str | None:
        return P.find_label(P.strip_identifiers(text), SENTIMENTS)

    def target_problem(self, target: Any) -> str | None:
        if isinstance(target, bool) or not isinstance(target, (int, float, str)):
            return f"{self.name} target must be a number (valence) or a sentiment word"
        if isinstance(target, str) and target.lower() not in SENTIMENTS:
            return f"{self.name} target word must be one of {SENTIMENTS}, got {target!r}"
        return None

    def answer_class(self, target: Any) -> str:
        """The sentiment word; a valence by its sign (NaN, which has none, as neutral)."""
        if isinstance(target, str):
            return target.strip().lower()
        value = float(target)
        return "positive" if value > 0 else "negative" if value < 0 else "neutral"

    def window_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The most likely sentiment, the valence p(positive) - p(negative) and the probabilities."""
        probs = answer["scores"]
        return {"sentiment": max(probs, key=probs.get), "valence": probs["positive"] - probs["negative"],
                "probabilities": probs}

    def csv_columns(self, labels: Sequence[str] | None) -> list[str]:
        return ["sentiment", "valence"]

    def csv_cells(self, answer: dict[str, Any], labels: Sequence[str] | None) -> dict[str, Any]:
        return {"sentiment": answer["sentiment"], "valence": f"{answer['valence']:.4f}"}

    def window_summary(self, answer: dict[str, Any]) -> str:
        return f"{answer['sentiment']} {answer['valence']:+.2f}"


@dataclass(frozen=True, repr=False)
class LabelTask(Task):
    """MER and MIR: one label, usually chosen from candidates listed in the prompt."""

    vocabulary: tuple[str, ...] = ()

    def format_target(self, target: Any) -> str:
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"{self.name} target must be a non-empty label string, got {target!r}")
        return target.strip()

    def parse(self, text: str | None, candidates: Sequence[str] | None = None) -> str | None:
        """A candidate the text names; else a known label; else a short bare answer."""
        body = P.strip_identifiers(text)
        body = P.split_think(body)[1] or body
        for pool in (candidates, self.vocabulary):
            found = P.find_label(body, list(pool or ()))
            if found is not None:
                return found
        return P.short_answer(body)

    def target_problem(self, target: Any) -> str | None:
        if not isinstance(target, str) or not target.strip():
            return f"{self.name} target must be a non-empty string"
        return None


@dataclass(frozen=True, repr=False)
class OpenVocabTask(Task):
    """OV-MER: any number of emotion words, written comma-separated."""

    def format_target(self, target: Any) -> str:
        if isinstance(target, str):
            words = P.split_word_list(target)
        elif isinstance(target, (list, tuple)):
            words = [str(w).strip().lower() for w in target if str(w).strip()]
        else:
            raise ValueError(f"ovmer target must be a list of words, got {type(target).__name__}")
        return ", ".join(dict.fromkeys(words))

    def parse(self, text: str | None, candidates: Sequence[str] | None = None) -> list[str]:
        return P.split_word_list(text)

    def target_problem(self, target: Any) -> str | None:
        if not isinstance(target, list) or not all(isinstance(w, str) for w in target):
            return f"{self.name} target must be a list of strings"
        return None

    def window_answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The generated words, the raw text and whether the budget cut it."""
        return {"words": self.parse(answer["text"]), "text": answer["text"], "truncated": answer["truncated"]}

    def csv_columns(self, labels: Sequence[str] | None) -> list[str]:
        return ["words"]

    def csv_cells(self, answer: dict[str, Any], labels: Sequence[str] | None) -> dict[str, Any]:
        return {"words": "; ".join(answer["words"])}

    def window_summary(self, answer: dict[str, Any]) -> str:
        return ", ".join(answer["words"]) or "(no words)"


@dataclass(frozen=True, repr=False)
class ReasonTask(Task):
    """ERI: a free-text explanation; parsing only cleans it."""

    def format_target(self, target: Any) -> str:
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"eri target must be a non-empty string, got {target!r}")
        return " ".join(target.split())

    def parse(self, text: str | None, candidates: Sequence[str] | None = None) -> str:
        body = P.strip_identifiers(text)
        body = re.sub(r"</?think>", " ", body, flags=re.I)
        return " ".join(body.split())

    def target_problem(self, target: Any) -> str | None:
        if not isinstance(target, str) or not target.strip():
            return f"{self.name} target must be a non-empty string"
        return None


def _clause(text: Any) -> str:
    """One reasoning step as a single line without a trailing full stop."""
    return " ".join(str(text or "").split()).rstrip(" .")


@dataclass(frozen=True, repr=False)
class EmpathyTask(Task):
    """ERG: four reasoning steps inside <think>...</think>, then the reply."""

    def format_target(self, target: Any) -> str:
        if not isinstance(target, dict):
            raise ValueError("erg target must be a dict with keys " + ", ".join(ERG_FIELDS))
        missing = [k for k in ERG_FIELDS if not isinstance(target.get(k), str)]
        if missing:
            raise ValueError("erg target lacks string field(s) " + ", ".join(missing))
        emotion = _clause(target["speaker_emotion"]).lower()
        steps = (
            f"1. Event scenario: {_clause(target['event_scenario'])}.",
            f"2. Speaker's emotion: the emotion of the speaker is {emotion}.",
            f"3. Emotion cause: {_clause(target['emotion_cause'])}.",
            f"4. Goal of the response: {_clause(target['goal_to_response'])}.",
        )
        return "<think>" + "\n".join(steps) + "</think>\n" + " ".join(target["reply"].split())

    def parse(self, text: str | None, candidates: Sequence[str] | None = None) -> dict:
        think, reply = P.split_think(text)
        emotion = P.speaker_emotion(think if think is not None else reply)
        return {"think": think, "reply": reply, "emotion": emotion}

    def target_problem(self, target: Any) -> str | None:
        if not isinstance(target, dict):
            return f"{self.name} target must be an object with keys " + ", ".join(ERG_FIELDS)
        missing = [k for k in ERG_FIELDS if not isinstance(target.get(k), str)]
        if missing:
            return f"{self.name} target lacks string field(s) " + ", ".join(missing)
        return None


MSA = SentimentTask(
    name="msa",
    identifier="",
    candidates=SENTIMENTS,
    max_new_tokens=16,
    timeline=True,
    timeline_rank=1,
    level="perception",
    metric="waf",
    description="multimodal sentiment analysis",
    templates=(
        "Judge the overall sentiment this person conveys through face, voice and words. "
        "Answer with one word: positive, negative or neutral.",
        "Taking the video, the audio and the subtitle together, is the attitude expressed "
        "here positive, negative or neutral? Reply with just that word.",
        "What sentiment polarity does the speaker express in this clip? Choose positive, "
        "negative or neutral and give only that word.",
        "Classify the sentiment of this clip as positive, negative or neutral, using every "
        "cue available. Output the single word.",
    ),
)

MER = LabelTask(
    name="mer",
    identifier="[Recognition]",
    candidates=tuple(L.label_set("ferv39k")),  # the 7 basic emotions: anger, disgust, fear, happy, neutral, sad, surprise
    max_new_tokens=16,
    timeline=True,
    timeline_rank=0,
    level="perception",
    metric="hit",
    phase3_weight=18,
    description="multimodal emotion recognition",
    vocabulary=_EMOTION_VOCAB,
    templates=(
        "Which emotion is the person in this clip showing? Answer with a single emotion word.",
        "Look at the facial expression, listen to the voice and read the words, then name "
        "the one emotion that best describes the person. Give only that word.",
        "Identify the main emotion of the speaker in this video. Reply with one word.",
        "What is the dominant emotional state of the person here? Respond with the emotion "
        "label alone.",
    ),
    candidate_templates=(
        "Which emotion is the person in this clip showing? Choose exactly one of: "
        "{candidates}. Answer with that label only.",
        "From these options: {candidates}, pick the one emotion that best matches the "
        "person's face, voice and words. Give only the chosen label.",
        "Classify the speaker's emotion into one of the following categories: {candidates}. "
        "Reply with the category name alone.",
        "The possible emotions are {candidates}. Which one does the person in this video "
        "express? Respond with a single label from the list.",
    ),
)

OVMER = OpenVocabTask(
    name="ovmer",
    identifier="[Recog_OV]",
    identifier_aliases=("[Recogn_OV]",),  # the authors' code writes this; the paper's spelling is emitted
    max_new_tokens=32,
    timeline=True,
    timeline_rank=2,
    level="perception",
    metric="ovf",
    phase3_weight=28,
    description="open-vocabulary multimodal emotion recognition",
    templates=(
        "List all the emotions the person in this clip seems to feel. Write them as emotion "
        "words separated by commas.",
        "Considering facial, vocal and verbal cues, which emotions does this person show? "
        "Give every fitting emotion word, comma-separated.",
        "Describe the person's emotional state with as many fitting emotion words as "
        "needed, separated by commas and without explanations.",
        "Name each emotion you can detect in the speaker, as a comma-separated list of words.",
    ),
)

ERI = ReasonTask(
    name="eri",
    identifier="[Inference]",
    max_new_tokens=96,
    level="understanding",
    metric="emer",
    judged=True,
    phase3_weight=31,
    description="emotion reason inference",
    templates=(
        "Explain what the person in this clip is feeling and why: point out the facial, "
        "vocal and verbal cues that support your reading.",
        "Reason about the speaker's emotional state. Describe the clues in the expression, "
        "the tone of voice and the words, and say which emotion they point to.",
        "Give an explanation of the emotion shown in this video, grounded in what you see, "
        "hear and read.",
        "Which emotion does this person experience, and what evidence in the video, audio "
        "and subtitle leads to that conclusion? Answer in a short paragraph.",
    ),
)

MIR = LabelTask(
    name="mir",
    identifier="[Intent]",
    candidates=tuple(L.label_set("mintrec")),  # the 20 MIntRec intents
    max_new_tokens=16,
    level="understanding",
    metric="intent",
    phase3_weight=5,
    description="multimodal intent recognition",
    vocabulary=_INTENT_VOCAB,
    templates=(
        "What does the speaker intend to do with this utterance? Answer with one intent label.",
        "Given the speaker's words, expression and tone, identify the purpose behind what "
        "they say. Reply with the intent only.",
        "Determine the communicative intent of the speaker in this clip and name it in a "
        "few words.",
        "Why is the speaker saying this? Give the intent as a short label.",
    ),
    candidate_templates=(
        "What does the speaker intend to do with this utterance? Choose one of: "
        "{candidates}. Answer with that label only.",
        "Pick the intent that best describes the speaker's purpose from this list: "
        "{candidates}. Give only the chosen label.",
        "Classify the speaker's intent into one of these categories: {candidates}. Reply "
        "with the category name alone.",
        "The possible intents are {candidates}. Which one fits what the speaker is doing "
        "here? Respond with a single label from the list.",
    ),
)

ERG = EmpathyTask(
    name="erg",
    identifier="[Interaction]",
    max_new_tokens=160,
    level="interaction",
    metric="reply",
    dialogue=True,
    reply=True,
    phase3_weight=18,
    description="empathetic response generation",
    templates=(
        "You are the listener in this conversation. Think step by step about the situation, "
        "the speaker's emotion, its cause and what your reply should achieve, then answer "
        "the speaker with empathy.",
        "Respond to the speaker as a caring listener. First reason about the scenario, how "
        "the speaker feels and why, and the aim of your answer; then write your reply.",
        "Read the dialogue and the speaker's latest turn, work out the event, the speaker's "
        "feelings and their cause, decide what your response should do, and then reply "
        "empathetically.",
        "Continue the conversation as an empathetic listener: reason about the speaker's "
        "situation and emotion first, then give a supportive reply.",
    ),
)

ALL_TASKS: tuple[Task, ...] = (MSA, MER, OVMER, ERI, MIR, ERG)
