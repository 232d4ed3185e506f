"""Label sets of the datasets Nano-EmoX trains and is scored on, kept as plain data.

Every label is lower-case, as the metrics compare case-insensitively. `label_set(name)`
returns a fresh list for a dataset name (case-insensitive, common spellings accepted).
AvaMERG carries two levels: the 32 fine-grained EmpatheticDialogues emotions and a
coarse set of 7 emotions plus neutral; `AVAMERG_FINE_TO_COARSE` maps one to the other
for the coarse hit rate, and `normalise_avamerg_emotion` folds the free-form emotion
words found in AvaMERG annotations onto the fine-grained set.
"""

from __future__ import annotations

import re

# Facial-expression video sets used for phase-1 visual alignment.
BASIC7 = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")
FERV39K = BASIC7
CAER = BASIC7
CREMA_D = ("anger", "disgust", "fear", "happy", "neutral", "sad")
M3ED = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# MER-UniBench emotion sets (the benchmark scores them through the emotion wheels).
MER2023 = ("neutral", "angry", "happy", "sad", "worried", "surprise")
MER2024 = MER2023
MELD = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
IEMOCAP4 = ("angry", "happy", "sad", "neutral")

MINTREC = (
    "complain", "praise", "apologise", "thank", "criticize", "agree", "taunt", "flaunt",
    "joke", "oppose", "comfort", "care", "inform", "advise", "arrange", "introduce",
    "leave", "prevent", "greet", "ask for help",
)
MINTREC2 = (
    "acknowledge", "advise", "agree", "apologise", "arrange", "ask for help",
    "asking for opinions", "care", "comfort", "complain", "confirm", "criticize", "doubt",
    "emphasize", "explain", "flaunt", "greet", "inform", "introduce", "invite", "joke",
    "leave", "oppose", "plan", "praise", "prevent", "refuse", "taunt", "thank", "warn",
)
MINTREC2_OOS = "UNK"  # out-of-scope utterances in MIntRec2.0 keep this literal label
MINTREC2_WITH_UNK = MINTREC2 + (MINTREC2_OOS,)

# AvaMERG: EmpatheticDialogues' 32 emotions, scored at a coarse level of 7 + neutral.
AVAMERG_FINE = (
    "afraid", "angry", "annoyed", "anticipating", "anxious", "apprehensive", "ashamed",
    "caring", "confident", "content", "devastated", "disappointed", "disgusted",
    "embarrassed", "excited", "faithful", "furious", "grateful", "guilty", "hopeful",
    "impressed", "jealous", "joyful", "lonely", "nostalgic", "prepared", "proud", "sad",
    "sentimental", "surprised", "terrified", "trusting",
)
AVAMERG_COARSE = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")

_COARSE_GROUPS = {
    "happy": ("joyful", "prepared", "content", "caring", "trusting", "faithful", "confident",
              "hopeful", "grateful", "proud", "excited", "anticipating"),
    "sad": ("lonely", "guilty", "anxious", "nostalgic", "disappointed", "sentimental",
            "ashamed", "devastated"),
    "surprised": ("impressed",),
    "angry": ("furious", "annoyed"),
    "fear": ("afraid", "terrified", "apprehensive"),
    # The reference scorer lists "embarrassed" under sad and again under disgusted; the
    # later entry is the one in effect, so published hit rates use disgusted.
    "disgusted": ("embarrassed",),
    "contempt": ("jealous",),
}
AVAMERG_FINE_TO_COARSE: dict[str, str] = {c: c for c in AVAMERG_COARSE}
for _coarse, _fines in _COARSE_GROUPS.items():
    for _fine in _fines:
        AVAMERG_FINE_TO_COARSE[_fine] = _coarse

# Free-form words that appear as `speaker_emotion` in AvaMERG annotations, folded onto
# the fine-grained set so that accuracy compares like with like.
_AVAMERG_FOLD = {
    "anxious": ("anxiety", "worried", "worry", "uneasy", "nervous", "stressed", "stress",
                "concerned", "concern", "overwhelmed", "overwhelm", "burdened", "conflicted"),
    "afraid": ("fear", "fearful", "scared", "vulnerable", "vulnerability", "helpless",
               "helplessness", "fragile"),
    "sad": ("sadness", "melancholy", "melancholic", "heavy-hearted", "upset", "unhappy"),
    "sentimental": ("pensive", "reflective", "thoughtful"),
    "annoyed": ("frustrated", "frustration", "irritated", "annoyance"),
    "disappointed": ("disappointment",),
    "nostalgic": ("nostalgia",),
    "lonely": ("loneliness",),
    "ashamed": ("inadequacy", "shame"),
    "guilty": ("regret", "guilt"),
    "joyful": ("happy", "joy", "happiness"),
    "angry": ("anger",),
    "grateful": ("gratitude", "thankful"),
    "surprised": ("surprise",),
    "disgusted": ("disgust",),
    "embarrassed": ("embarrassment",),
    "excited": ("excitement",),
    "proud": ("pride",),
    "jealous": ("jealousy", "envious"),
}
_AVAMERG_FOLD_MAP = {word: fine for fine, words in _AVAMERG_FOLD.items() for word in words}

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "ferv39k": FERV39K,
    "caer": CAER,
    "crema-d": CREMA_D,
    "m3ed": M3ED,
    "mer2023": MER2023,
    "mer2024": MER2024,
    "meld": MELD,
    "iemocap": IEMOCAP4,
    "mintrec": MINTREC,
    "mintrec2": MINTREC2_WITH_UNK,
    "mintrec2-inscope": MINTREC2,
    "avamerg": AVAMERG_FINE,
    "avamerg-coarse": AVAMERG_COARSE,
    "sentiment": ("positive", "negative", "neutral"),
}
_ALIASES = {
    "cremad": "crema-d",
    "crema_d": "crema-d",
    "mintrec2.0": "mintrec2",
    "mintrec20": "mintrec2",
    "mintrec-2.0": "mintrec2",
    "iemocap4": "iemocap",
    "avamerg-fine": "avamerg",
    "avamerg_coarse": "avamerg-coarse",
    "msa": "sentiment",
}


def canonical_label_set_name(name: str) -> str:
    """Canonical key of `LABEL_SETS` for a dataset name, raising ValueError when unknown."""
    key = re.sub(r"\s+", "", str(name).lower())
    key = _ALIASES.get(key, key)
    if key not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    return key


def label_set(name: str) -> list[str]:
    """The label list of one dataset (a new list each call; order is the dataset's)."""
    return list(LABEL_SETS[canonical_label_set_name(name)])


def normalise_avamerg_emotion(word: str | None) -> str | None:
    """Fold a free-form AvaMERG emotion word onto the 32 fine labels when a fold is known.

    Words already in the fine set, and words with no known fold, come back lower-cased
    and stripped (so unknown labels pass through instead of failing); None stays None.
    """
    if word is None:
        return None
    w = word.strip().lower()
    return w if w in AVAMERG_FINE else _AVAMERG_FOLD_MAP.get(w, w)


def coarse_emotion(word: str | None) -> str | None:
    """Coarse AvaMERG class (7 emotions + neutral) of a fine label, or None when unknown."""
    if word is None:
        return None
    return AVAMERG_FINE_TO_COARSE.get(normalise_avamerg_emotion(word))
