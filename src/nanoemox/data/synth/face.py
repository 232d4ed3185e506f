"""Drawn faces for SynthAffect: expression parameters per emotion and frame rendering.

A face is a few PIL primitives in face-relative units (half face width = 1, y down),
placed on a varied background. The emotion lives in a handful of continuous
expression parameters (mouth curve and opening, brow height and slant, eye opening,
nose wrinkle, lip asymmetry, cheek and skin colour); a clip moves from the neutral
expression to the emotion's peak (scaled by intensity) and back a little, with blinks.
Nuisance: background colours and clutter, skin and hair colour, face position, size
and a slow drift, all drawn from the clip's random generator.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Expression:
    """Continuous expression parameters; the neutral face is the default."""

    mouth_curve: float = 0.0   # + corners up (smile), - corners down
    mouth_open: float = 0.0    # 0 closed .. 1 wide open
    mouth_width: float = 0.45  # half width in face units
    mouth_asym: float = 0.0    # + left corner raised, right lowered (sneer)
    teeth: float = 0.0         # > 0.5 shows a band of teeth
    brow_raise: float = 0.0    # + brows higher
    brow_slant: float = 0.0    # + inner ends lower (frown), - inner ends higher (worry)
    eye_open: float = 1.0      # relative eye height
    nose_wrinkle: float = 0.0  # > 0.3 draws wrinkle lines
    cheek: float = 0.0         # pink cheek spots (smile)
    flush: float = 0.0         # red tint of the skin (anger)
    green: float = 0.0         # green tint (disgust, the cartoon convention)
    pale: float = 0.0          # blanched skin (fear)
    blue: float = 0.0          # grey-blue tint (sadness)
    glow: float = 0.0          # warm golden glow (happiness)
    tear: float = 0.0          # > 0.8 draws a tear (strong sadness)

    def toward(self, peak: "Expression", amount: float) -> "Expression":
        """Linear blend from this expression toward `peak` by `amount` (0..1)."""
        vals = {f.name: getattr(self, f.name) + amount * (getattr(peak, f.name) - getattr(self, f.name))
                for f in fields(self)}
        return Expression(**vals)


NEUTRAL = Expression()
# Peak expressions at full intensity; each differs from every other in several
# parameters so the classes stay apart after resizing and compression.
PEAKS: dict[str, Expression] = {
    "anger": Expression(mouth_curve=-0.3, mouth_open=0.35, mouth_width=0.5, teeth=1.0,
                        brow_raise=-0.5, brow_slant=1.0, eye_open=0.7, flush=1.0),
    "disgust": Expression(mouth_curve=-0.4, mouth_open=0.2, mouth_asym=1.0, brow_raise=-0.3,
                          brow_slant=0.4, eye_open=0.5, nose_wrinkle=1.0, green=1.0),
    "fear": Expression(mouth_curve=-0.2, mouth_open=0.6, mouth_width=0.65, teeth=1.0,
                       brow_raise=0.8, brow_slant=-1.0, eye_open=1.8, pale=1.0),
    "happy": Expression(mouth_curve=1.0, mouth_open=0.6, mouth_width=0.7, teeth=1.0, brow_raise=0.2,
                        eye_open=0.45, cheek=1.0, glow=1.0),
    "neutral": NEUTRAL,
    "sad": Expression(mouth_curve=-1.0, mouth_width=0.4, brow_raise=0.1, brow_slant=-0.9,
                      eye_open=0.5, tear=1.0, blue=1.0),
    "surprise": Expression(mouth_open=1.3, mouth_width=0.36, brow_raise=1.3, eye_open=2.2),
}
# The polite smile that masks the real emotion in conflict clips.
POLITE_SMILE = NEUTRAL.toward(PEAKS["happy"], 0.6)


@dataclass(frozen=True)
class Look:
    """Per-clip nuisance: where the face is and what it and the background look like."""

    size: int
    cx: float
    cy: float
    scale: float          # pixels per face unit
    drift: tuple[float, float]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    background: np.ndarray  # [H, W, 3] uint8


def _rand_colour(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Two-colour gradient, a few random shapes and a little static noise."""
    a = np.array(_rand_colour(rng, 60, 200), dtype=np.float32)
    b = np.array(_rand_colour(rng, 60, 200), dtype=np.float32)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    grad = t[:, None] if rng.random() < 0.5 else t[None, :]
    img = a + (b - a) * np.broadcast_to(grad, (size, size))[..., None]
    canvas = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = rng.integers(0, size, size=2)
        w, h = rng.integers(size // 10, size // 4, size=2)
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=_rand_colour(rng, 0, 256))
    arr = np.asarray(canvas, dtype=np.int16) + rng.integers(-12, 13, size=(size, size, 1), dtype=np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8)


def sample_look(rng: np.random.Generator, size: int) -> Look:
    """Draw the nuisance appearance of one clip."""
    scale = size * float(rng.uniform(0.3, 0.35))
    margin = 1.25 * scale
    cx = float(rng.uniform(margin, size - margin)) if size - 2 * margin > 0 else size / 2
    cy = float(rng.uniform(margin, size - margin)) if size - 2 * margin > 0 else size / 2
    tone = float(rng.uniform(0.0, 1.0))  # light to dark skin
    skin = tuple(int(v) for v in (np.array([240, 205, 180]) * (1 - tone) + np.array([120, 80, 55]) * tone))
    return Look(size=size, cx=cx, cy=cy, scale=scale,
                drift=(float(rng.uniform(-0.04, 0.04)), float(rng.uniform(-0.04, 0.04))),
                skin=skin, hair=_rand_colour(rng, 10, 160), background=_background(rng, size))


def envelope(t: np.ndarray) -> np.ndarray:
    """Expression strength over normalised time: quick onset, hold, slight release."""
    onset = np.clip((t - 0.04) / 0.14, 0.0, 1.0)
    release = 1.0 - 0.2 * np.clip((t - 0.8) / 0.2, 0.0, 1.0)
    return onset * release


def expression_track(peak: Expression, n_frames: int, rng: np.random.Generator) -> list[Expression]:
    """Per-frame expressions of one clip: the envelope toward `peak`, plus blinks."""
    t = np.linspace(0.0, 1.0, n_frames)
    amount = envelope(t)
    blinks = set(int(i) for i in rng.choice(n_frames, size=max(1, n_frames // 16), replace=False))
    track = []
    for i in range(n_frames):
        e = NEUTRAL.toward(peak, float(amount[i]))
        if i in blinks:
            e = replace(e, eye_open=0.1)
        track.append(e)
    return track


# Half width and half height of the head ellipse in face units.
HEAD = (1.0, 1.2)

# Skin tints and the colour each one pulls the skin toward.
_TINTS = (("flush", (235, 40, 30)), ("green", (120, 200, 70)), ("pale", (240, 245, 255)), ("blue", (110, 140, 210)),
          ("glow", (255, 205, 90)))


def _skin_colour(skin: tuple[int, int, int], e: Expression) -> tuple[int, int, int]:
    """Skin colour after the expression's tints (each blends up to 60 % toward its colour)."""
    c = np.asarray(skin, dtype=np.float64)
    for name, colour in _TINTS:
        k = 0.6 * max(0.0, min(getattr(e, name), 1.0))
        c = c + (np.asarray(colour, dtype=np.float64) - c) * k
    return tuple(int(v) for v in c)


def _mouth(draw: ImageDraw.ImageDraw, p, e: Expression, s: float) -> None:
    """Upper and lower lip curves; the gap between them is filled dark when open."""
    xs = np.linspace(-1.0, 1.0, 15)
    w = e.mouth_width
    base_y = 0.6 - 0.12 * e.mouth_open
    corner_lift = 0.32 * e.mouth_curve * xs ** 2 + 0.18 * e.mouth_asym * xs
    gap = 0.42 * e.mouth_open * np.sqrt(1 - xs ** 2)
    # The upper lip rises a little as the mouth opens so a narrow open mouth reads as an "O".
    upper = [p(x * w, base_y - lift - 0.3 * g) for x, lift, g in zip(xs, corner_lift, gap)]
    lower = [p(x * w, base_y - lift + 0.7 * g) for x, lift, g in zip(xs, corner_lift, gap)]
    lip = max(2, int(0.07 * s))
    if e.mouth_open > 0.08:
        draw.polygon(upper + lower[::-1], fill=(70, 10, 20))
        if e.teeth > 0.5:
            band = [p(x * w * 0.85, base_y - lift + 0.05 * g) for x, lift, g in zip(xs, corner_lift, gap)]
            draw.polygon(upper[1:-1] + band[1:-1][::-1], fill=(245, 245, 240))
        draw.line(lower, fill=(150, 40, 50), width=lip)
    draw.line(upper, fill=(150, 40, 50), width=lip)


def _eyes_and_brows(draw: ImageDraw.ImageDraw, p, e: Expression, s: float) -> None:
    for side in (-1.0, 1.0):
        ex, ey = 0.38 * side, -0.2
        rx, ry = 0.17, max(0.02, 0.11 * e.eye_open)
        draw.ellipse([p(ex - rx, ey - ry), p(ex + rx, ey + ry)], fill=(250, 250, 250), outline=(30, 30, 30))
        pr = min(0.08, ry)
        draw.ellipse([p(ex - pr, ey - pr), p(ex + pr, ey + pr)], fill=(25, 20, 40))
        by = -0.5 - 0.22 * e.brow_raise
        inner, outer = p(0.12 * side, by + 0.18 * e.brow_slant), p(0.6 * side, by - 0.06 * e.brow_slant)
        draw.line([inner, outer], fill=(40, 25, 20), width=max(2, int(0.1 * s)))
        if e.tear > 0.8 and side > 0:
            draw.ellipse([p(ex - 0.07, ey + 0.18), p(ex + 0.07, ey + 0.5)], fill=(40, 110, 240))
        if e.cheek > 0.3:
            cr = 0.2 * e.cheek
            draw.ellipse([p(0.55 * side - cr, 0.25 - cr), p(0.55 * side + cr, 0.25 + cr)], fill=(240, 120, 140))


def face_centre(look: Look, t: float) -> tuple[float, float]:
    """Pixel position of the face centre at normalised time `t` (the slow drift moves it)."""
    return look.cx + look.drift[0] * look.size * t, look.cy + look.drift[1] * look.size * t


def head_box(look: Look, t: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in pixels of the head ellipse at normalised time `t`, unclipped."""
    cx, cy = face_centre(look, t)
    return cx - HEAD[0] * look.scale, cy - HEAD[1] * look.scale, cx + HEAD[0] * look.scale, cy + HEAD[1] * look.scale


def render_frame(look: Look, e: Expression, t: float) -> np.ndarray:
    """One RGB frame [H, W, 3] uint8 of the face with expression `e` at normalised time `t`."""
    s = look.scale
    cx, cy = face_centre(look, t)

    def p(x: float, y: float) -> tuple[float, float]:
        return (cx + x * s, cy + y * s)

    img = Image.fromarray(look.background.copy())
    draw = ImageDraw.Draw(img)
    draw.ellipse([p(-1.05, -1.35), p(1.05, 0.6)], fill=look.hair)  # hair behind the head
    draw.ellipse([p(-HEAD[0], -HEAD[1]), p(HEAD[0], HEAD[1])], fill=_skin_colour(look.skin, e), outline=(40, 30, 30))
    _eyes_and_brows(draw, p, e, s)
    draw.line([p(0.0, -0.05), p(-0.08, 0.25), p(0.06, 0.27)], fill=(90, 60, 50), width=max(1, int(0.05 * s)))
    if e.nose_wrinkle > 0.3:
        for dy in (-0.12, -0.02):
            draw.line([p(-0.14, dy), p(0.14, dy - 0.04)], fill=(90, 50, 40), width=max(1, int(0.04 * s)))
    _mouth(draw, p, e, s)
    return np.asarray(img)


def render_clip(look: Look, peak: Expression, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """All frames of one clip: [F, H, W, 3] uint8."""
    track = expression_track(peak, n_frames, rng)
    times = np.linspace(0.0, 1.0, n_frames)
    return np.stack([render_frame(look, e, float(t)) for e, t in zip(track, times)])
