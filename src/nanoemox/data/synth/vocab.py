"""SynthAffect label vocabulary: emotions, valences, intensities, open-vocabulary words, intents.

Everything here is plain data plus a few pure functions, so the generator, the tests
and the evaluation all read the same definitions. The vocabulary is SynthAffect's own
and does not depend on the task registry.
"""

from __future__ import annotations

# The seven basic classes (the FERV39K/CAER set); "happy" rather than "happiness"
# because the label is also what the model is asked to say.
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Signed valence of each emotion at full intensity (MSA target = valence * intensity scale).
# Surprise is taken as pleasant so that every non-neutral clip has a clear sign.
VALENCE: dict[str, float] = {
    "anger": -0.9,
    "disgust": -0.8,
    "fear": -0.7,
    "happy": 0.9,
    "neutral": 0.0,
    "sad": -0.8,
    "surprise": 0.5,
}

INTENSITIES: tuple[str, ...] = ("mild", "strong")
# How far the face and voice move from neutral, and how strongly the valence is scored.
INTENSITY_SCALE: dict[str, float] = {"mild": 0.6, "strong": 1.0}

MODALITIES: tuple[str, ...] = ("face", "voice", "text")

# Open-vocabulary targets: the primary word plus intensity-dependent words. All words
# map into the emotion wheels (shared/emotion_wheel) except "neutral", which the
# wheel metric drops; "calm" keeps neutral clips scorable.
OV_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "anger": {"mild": ("angry", "annoyed"), "strong": ("angry", "furious")},
    "disgust": {"mild": ("disgusted", "disapproving"), "strong": ("disgusted", "revolted", "loathing")},
    "fear": {"mild": ("fearful", "worried"), "strong": ("fearful", "terrified")},
    "happy": {"mild": ("happy", "pleased"), "strong": ("happy", "delighted")},
    "neutral": {"mild": ("neutral", "calm"), "strong": ("neutral", "calm")},
    "sad": {"mild": ("sad", "disappointed"), "strong": ("sad", "miserable")},
    "surprise": {"mild": ("surprised", "curious"), "strong": ("surprised", "amazed")},
}

# Adjective used in sentences ("the speaker is ... angry").
ADJECTIVE: dict[str, str] = {
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "afraid",
    "happy": "happy",
    "neutral": "calm",
    "sad": "sad",
    "surprise": "surprised",
}

# Intents (a subset of the MIntRec list). Four follow from what is said; the
# evaluative remark becomes praise, complain or inform depending on the clip's
# valence, so intent recognition needs the emotion cue as well as the words.
INTENTS: tuple[str, ...] = ("praise", "complain", "inform", "thank", "apologise", "greet", "ask for help")
SPEECH_ACTS: tuple[str, ...] = ("remark", "thank", "apologise", "greet", "ask for help")

# Groups of modalities that carry the emotion, with their share of clips. Single
# modality groups are kept equal because the modality ablation is measured on them.
# "conflict": the face shows a polite (mild) smile while the voice or the words carry
# the real emotion, which is authoritative.
CUE_GROUPS: dict[str, float] = {
    "face": 0.25,
    "voice": 0.25,
    "text": 0.25,
    "face+voice": 0.06,
    "face+text": 0.06,
    "voice+text": 0.04,
    "face+voice+text": 0.04,
    "conflict": 0.05,
}
# Emotions that a polite smile can hide in a conflict clip.
MASKABLE: tuple[str, ...] = ("anger", "disgust", "fear", "sad")


def valence(emotion: str, intensity: str) -> float:
    """MSA target: the emotion's valence scaled by intensity (0.0 for neutral)."""
    return round(VALENCE[emotion] * INTENSITY_SCALE[intensity], 3)


def ovmer_words(emotion: str, intensity: str) -> list[str]:
    """Open-vocabulary target words of a clip: a deterministic function of what it shows."""
    return list(OV_WORDS[emotion][intensity])


def intent_for(act: str, emotion: str) -> str:
    """Intent label of a clip from its speech act and (for remarks) the sign of its valence."""
    if act not in SPEECH_ACTS:
        raise ValueError(f"unknown speech act {act!r}; expected one of {SPEECH_ACTS}")
    if act != "remark":
        return act
    v = VALENCE[emotion]
    return "praise" if v > 0 else "complain" if v < 0 else "inform"


def sentiment(emotion: str) -> str:
    """Coarse sentiment word of an emotion: positive, negative or neutral."""
    v = VALENCE[emotion]
    return "positive" if v > 0 else "negative" if v < 0 else "neutral"
