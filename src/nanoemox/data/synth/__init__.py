"""SynthAffect: a built-in synthetic multimodal emotion corpus for all six tasks.

Each clip is a drawn face with a moving expression, a voice-like signal with
emotional prosody and a templated subtitle; the emotion is carried by a recorded
subset of those modalities (the others stay neutral), so a model must use every
branch. `generate(out_dir, n, seed)` writes manifests and media; the label
vocabulary (`EMOTIONS`, `INTENTS`, `VALENCE`, `ovmer_words`, ...) is exported for
tests and evaluation. `generate(..., people=2)` writes two-person clips instead (a
speaker and a silent listener side by side, `people.py`) for evaluating per-person
answers. `compose_long_video(corpus, out)` strings a corpus's clips into one long video
with known emotions per stretch. See docs/synthaffect.md.
"""

from nanoemox.data.synth.generate import GENERATOR_VERSION, MediaConfig, generate
from nanoemox.data.synth.long import compose_long_video
from nanoemox.data.synth.plan import ClipPlan, make_plans
from nanoemox.data.synth.vocab import (
    ADJECTIVE, CUE_GROUPS, EMOTIONS, INTENSITIES, INTENSITY_SCALE, INTENTS, MODALITIES, OV_WORDS,
    SPEECH_ACTS, VALENCE, intent_for, ovmer_words, sentiment, valence,
)

__all__ = [
    "ADJECTIVE", "CUE_GROUPS", "EMOTIONS", "GENERATOR_VERSION", "INTENSITIES", "INTENSITY_SCALE", "INTENTS",
    "MODALITIES", "OV_WORDS", "SPEECH_ACTS", "VALENCE", "ClipPlan", "MediaConfig", "compose_long_video", "generate",
    "intent_for", "make_plans", "ovmer_words", "sentiment", "valence",
]
