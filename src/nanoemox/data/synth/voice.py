"""Voice-like audio for SynthAffect: prosody profiles per emotion and waveform synthesis.

The signal is a harmonic source (fundamental plus harmonics under a vowel-like
spectral envelope) gated by a syllable envelope. The emotion is carried by prosody:
pitch level (relative to the speaker's own base pitch), pitch contour over the
utterance and within each syllable, syllable rate, loudness, spectral tilt
(bright or dull), tremor and breath or harsh noise. A clip's profile moves from the
neutral one toward the emotion's by the clip's intensity, so non-cue clips speak with
neutral prosody and differ only by speaker and vowel choice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Prosody:
    """Prosody parameters; the neutral voice is the default."""

    pitch: float = 1.0      # multiplier of the speaker's base pitch
    slope: float = -0.05    # relative pitch change over the utterance
    glide: float = 0.0      # relative pitch change within each syllable
    rate: float = 4.0       # syllables per second
    loudness: float = 0.5   # peak amplitude
    tilt: float = 1.2       # harmonic roll-off exponent (higher = duller)
    tremor: float = 0.0     # depth of a 7 Hz pitch tremor
    breath: float = 0.02    # breath noise level (relative to loudness)
    harsh: float = 0.0      # rough noise and soft clipping

    def toward(self, peak: "Prosody", amount: float) -> "Prosody":
        vals = {f.name: getattr(self, f.name) + amount * (getattr(peak, f.name) - getattr(self, f.name))
                for f in fields(self)}
        return Prosody(**vals)


NEUTRAL = Prosody()
PROFILES: dict[str, Prosody] = {
    "anger": Prosody(pitch=1.15, slope=-0.15, glide=-0.2, rate=5.0, loudness=0.95, tilt=0.4, harsh=0.8),
    "disgust": Prosody(pitch=0.8, slope=0.0, glide=-0.25, rate=2.5, loudness=0.5, tilt=1.8, breath=0.08, harsh=0.25),
    "fear": Prosody(pitch=1.75, slope=0.05, glide=0.0, rate=6.5, loudness=0.3, tilt=1.8, tremor=0.12, breath=0.0),
    "happy": Prosody(pitch=1.5, slope=0.25, glide=0.15, rate=6.0, loudness=0.75, tilt=0.7),
    "neutral": NEUTRAL,
    "sad": Prosody(pitch=0.75, slope=-0.3, glide=-0.08, rate=2.2, loudness=0.22, tilt=2.2, breath=0.08),
    "surprise": Prosody(pitch=1.3, slope=0.1, glide=0.9, rate=2.8, loudness=0.8, tilt=1.5, breath=0.15),
}

# Vowel formants (F1, F2) in Hz; each syllable picks one, which varies the timbre.
_VOWELS = ((730, 1090), (270, 2290), (530, 1840), (570, 840), (300, 870), (660, 1720))


def sample_speaker(rng: np.random.Generator) -> float:
    """Base pitch of a speaker in Hz (log-uniform)."""
    return float(np.exp(rng.uniform(np.log(110.0), np.log(150.0))))


def _syllables(n: int, prosody: Prosody, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample syllable envelope, position within the syllable (0..1) and syllable index."""
    env = np.zeros(n, dtype=np.float64)
    pos = np.zeros(n, dtype=np.float64)
    idx = np.full(n, -1, dtype=np.int64)
    t, k = int(0.05 * SAMPLE_RATE), 0
    period = SAMPLE_RATE / prosody.rate
    while t < n:
        length = int(period * rng.uniform(0.55, 0.8))
        stop = min(n, t + length)
        x = np.arange(stop - t) / max(1, length)
        # raised-sine envelope with a short attack: syllable-like loudness
        env[t:stop] = np.sin(np.pi * np.clip(x, 0, 1)) ** 0.7
        pos[t:stop] = x
        idx[t:stop] = k
        t += int(period * rng.uniform(0.85, 1.15))
        k += 1
    return env, pos, idx


def _pitch_track(n: int, f0: float, prosody: Prosody, pos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = np.arange(n) / n
    track = f0 * prosody.pitch * (1.0 + prosody.slope * (u - 0.5)) * (1.0 + prosody.glide * (pos - 0.5))
    track *= 1.0 + prosody.tremor * np.sin(2 * np.pi * 7.0 * np.arange(n) / SAMPLE_RATE)
    track *= 1.0 + 0.01 * rng.standard_normal() # slight per-utterance detune
    return track


def _harmonics(phase: np.ndarray, f0: np.ndarray, prosody: Prosody, vowel: np.ndarray) -> np.ndarray:
    """Sum of harmonics weighted by roll-off and the current vowel's formants.

    Pitch and vowel change slowly, so harmonic weights are computed at a 200 Hz
    control rate and held; the harmonics themselves come from powers of
    exp(i * phase), which is much cheaper than one sine per harmonic.
    """
    n = len(phase)
    step = SAMPLE_RATE // 200
    ctrl = np.arange(0, n, step)
    f0c, f1c, f2c = f0[ctrl], vowel[ctrl, 0], vowel[ctrl, 1]
    base = np.exp(1j * phase).astype(np.complex64)
    z = np.ones(n, dtype=np.complex64)
    out = np.zeros(n, dtype=np.float32)
    for k in range(1, 40):
        z *= base
        fk = k * f0c
        weight = k ** (-prosody.tilt) * (1.0 + 3.0 * np.exp(-((fk - f1c) / 150.0) ** 2)
                                         + 2.0 * np.exp(-((fk - f2c) / 250.0) ** 2))
        weight = np.where(fk < 0.45 * SAMPLE_RATE, weight, 0.0)
        if not weight.any():
            break
        out += np.repeat(weight, step)[:n] * z.imag  # hold each weight for 5 ms
    return out


def synthesize(duration: float, f0: float, prosody: Prosody, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] at 16 kHz of a voice speaking with `prosody`."""
    n = int(round(duration * SAMPLE_RATE))
    env, pos, idx = _syllables(n, prosody, rng)
    pitch = _pitch_track(n, f0, prosody, pos, rng)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    choice = rng.integers(0, len(_VOWELS), size=int(idx.max()) + 2)
    vowel = np.asarray(_VOWELS, dtype=np.float64)[choice[idx + 1]]
    voiced = _harmonics(phase, pitch, prosody, vowel)
    voiced /= np.max(np.abs(voiced)) + 1e-9
    noise = rng.standard_normal(n)
    sig = voiced + (prosody.breath + prosody.harsh * 0.5) * noise
    if prosody.harsh > 0:
        sig = np.tanh((1.0 + 3.0 * prosody.harsh) * sig) / np.tanh(1.0 + 3.0 * prosody.harsh)
    sig = prosody.loudness * env * sig / (np.max(np.abs(sig)) + 1e-9)
    sig += 0.004 * rng.standard_normal(n)  # room noise
    return np.clip(sig, -1.0, 1.0).astype(np.float32)


def estimate_pitch(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Median fundamental (Hz) over loud 40 ms frames, by autocorrelation; NaN if none are loud."""
    frame, hop = int(0.04 * sample_rate), int(0.02 * sample_rate)
    lo, hi = int(sample_rate / 450), int(sample_rate / 60)
    peak = np.max(np.abs(wave)) + 1e-9
    values = []
    for start in range(0, len(wave) - frame, hop):
        x = wave[start:start + frame].astype(np.float64)
        if np.max(np.abs(x)) < 0.5 * peak:
            continue
        x = x - x.mean()
        ac = np.correlate(x, x, mode="full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        values.append(sample_rate / lag)
    return float(np.median(values)) if values else float("nan")
