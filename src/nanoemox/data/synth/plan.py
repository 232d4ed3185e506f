"""What each SynthAffect clip shows: emotion, cue modalities, intent, event and split.

Planning is separate from rendering: one random generator seeded by the corpus seed
decides every clip's content here (cheap, in one process), and each clip's media is
then rendered from its own seed, so the result does not depend on how rendering is
spread over processes. Cue groups and emotions are dealt out in balanced cycles
rather than drawn independently, so even a small corpus covers every emotion and
every single-modality cue group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from nanoemox.data.synth import text as wording
from nanoemox.data.synth.voice import sample_speaker
from nanoemox.data.synth.vocab import (
    CUE_GROUPS, EMOTIONS, INTENSITIES, MASKABLE, SPEECH_ACTS, intent_for, valence,
)

# Share of speech acts; remarks are more common because they split three ways.
ACT_WEIGHTS: dict[str, float] = {"remark": 0.4, "thank": 0.15, "apologise": 0.15, "greet": 0.15,
                                 "ask for help": 0.15}
assert tuple(ACT_WEIGHTS) == SPEECH_ACTS


@dataclass
class ClipPlan:
    """Content of one clip (everything except the pixels and samples)."""

    index: int
    clip_id: str
    split: str
    emotion: str
    intensity: str
    cue_group: str
    cues: list[str]                # modalities that show the emotion
    conflict: bool                 # face shows a polite smile that the cue modality overrules
    shown: dict[str, str]          # what each modality displays: face/voice/text -> emotion
    act: str
    intent: str
    event: str
    subtitle: str
    remark: str                    # emotional remark in the subtitle ("" if none)
    speaker_f0: float
    media_seed: int
    variant: dict[str, int] = field(default_factory=dict)  # template choices

    def to_extra(self) -> dict:
        """Clip-level facts copied into every manifest line of the clip."""
        d = asdict(self)
        for key in ("index", "split", "subtitle", "variant", "cues", "media_seed"):
            d.pop(key)
        d["cue_modalities"] = list(self.cues)
        d["authoritative"] = self.cues[0] if self.conflict else None
        d["valence"] = valence(self.emotion, self.intensity)
        return d


def _deal_counts(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Split n into integer counts proportional to `shares` (largest remainder)."""
    total = sum(shares.values())
    raw = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    order = sorted(shares, key=lambda k: (-(raw[k] - counts[k]), list(shares).index(k)))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _cycle(rng: np.random.Generator, items: tuple[str, ...], count: int) -> list[str]:
    """`count` items in shuffled rounds, so each appears equally often (+-1)."""
    out: list[str] = []
    while len(out) < count:
        out.extend(items[i] for i in rng.permutation(len(items)))
    return out[:count]


def _split_labels(n: int, fractions: tuple[float, float, float]) -> list[str]:
    """Train/dev/test labels for n clips, with dev and test positions evenly spaced.

    The clips are listed group by group, so even spacing stratifies the splits by cue
    group; dev and test get at least one clip each once n >= 3.
    """
    wanted = [int(round(n * f)) for f in fractions[1:]]
    if n >= 3:
        wanted = [max(1, w) if f > 0 else 0 for w, f in zip(wanted, fractions[1:])]
    labels = ["train"] * n
    for name, count, offset in (("test", wanted[1], 0.5), ("dev", wanted[0], 0.0)):
        for k in range(count):
            pos = int((k + offset) * n / count)
            while labels[pos % n] != "train":  # skip a slot the other split already took
                pos += 1
            labels[pos % n] = name
    return labels


def _content(rng: np.random.Generator, emotion: str, group: str) -> tuple[list[str], bool, dict[str, str]]:
    """Cue modalities, conflict flag and what each modality shows."""
    if group == "conflict":
        cue = "voice" if rng.random() < 0.5 else "text"
        shown = {"face": "happy", "voice": "neutral", "text": "neutral"}
        shown[cue] = emotion
        return [cue], True, shown
    cues = group.split("+")
    shown = {m: (emotion if m in cues else "neutral") for m in ("face", "voice", "text")}
    return cues, False, shown


def _plan_clip(rng: np.random.Generator, index: int, split: str, emotion: str, group: str,
               seed: int) -> ClipPlan:
    intensity = INTENSITIES[int(rng.integers(len(INTENSITIES)))]
    cues, conflict, shown = _content(rng, emotion, group)
    act = str(rng.choice(SPEECH_ACTS, p=list(ACT_WEIGHTS.values())))
    event = wording.EVENTS[int(rng.integers(len(wording.EVENTS)))]
    variant = {k: int(rng.integers(0, 1000)) for k in ("act", "remark", "reply", "prompt", "history")}
    remark = ""
    if shown["text"] != "neutral":
        choices = wording.EMOTION_REMARKS[emotion][intensity]
        remark = choices[variant["remark"] % len(choices)]
    return ClipPlan(
        index=index, clip_id=f"synth_{index:05d}", split=split, emotion=emotion, intensity=intensity,
        cue_group=group, cues=cues, conflict=conflict, shown=shown, act=act,
        intent=intent_for(act, emotion), event=event.key,
        subtitle=wording.subtitle(act, event, variant["act"], remark), remark=remark,
        speaker_f0=round(sample_speaker(rng), 2),
        media_seed=int(np.random.SeedSequence([seed, index]).generate_state(1)[0]),
        variant=variant,
    )


def make_plans(n: int, seed: int, split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
               cue_groups: dict[str, float] | None = None) -> list[ClipPlan]:
    """Plan `n` clips deterministically from `seed`."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if len(split_fractions) != 3 or abs(sum(split_fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three numbers summing to 1, got {split_fractions}")
    rng = np.random.default_rng(seed)
    counts = _deal_counts(n, cue_groups or CUE_GROUPS)
    slots: list[tuple[str, str]] = []  # (group, emotion), grouped by cue group
    for group, count in counts.items():
        slots.extend((group, e) for e in _cycle(rng, MASKABLE if group == "conflict" else EMOTIONS, count))
    slots = [(g, e, s) for (g, e), s in zip(slots, _split_labels(n, split_fractions))]
    order = rng.permutation(len(slots))
    return [_plan_clip(rng, i, slots[j][2], slots[j][1], slots[j][0], seed) for i, j in enumerate(order)]
