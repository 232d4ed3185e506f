"""Where the demo's signal is, stage by stage: linear probes, the stand-ins' own heads, baselines, intervals.

Everything here reads what the demo already has: the feature cache of the frozen
encoders (one row per clip), the trained model's branches, the stand-ins' heads and the
evaluation's predictions. Nothing is trained on dev or test: a probe is fitted on the
training clips and only scored on dev and test.

- **Probes.** For each stage, a logistic-regression probe (scikit-learn, standardised
  inputs) reads one vector per clip:
  - the frozen encoders' features (scene: CLS of the sampled frames, speech: the
    windows' pooled vectors, face: per-frame face features; each averaged over frames
    or windows) and, after P2E, each branch's tokens (averaged) and the fused token;
  - a branch is probed on what its modality *shows* (`extra.shown`: the face for scene
    and face, the voice for speech); its accuracy is given on all clips and on the
    clips whose emotion that modality carries; the fused token and all tokens together
    are probed on the clip's emotion.
- **Stand-ins' own heads**: the linear heads the encoder stand-ins were trained with,
  applied to the cached features of dev clips (the same frames and audio window).
- **Baselines** of every headline figure, scored by the benchmark's own scorer: a
  uniformly random answer per clip (seeded), the training split's majority answer for
  every clip, and the P2E model with video and audio masked (blank video, silence: the
  subtitle or dialogue alone).
- **95% intervals**: percentile bootstrap over the clips of each task (1,000 resamples,
  seeded).
- **The ERG template** (`think_intact`): whether an answer keeps `<think>`, the four
  numbered steps, one `</think>` and a reply; its share has an interval like the figures.
- **The training split** (`train_subset`): the same figures on a seeded draw of training
  records, to set fit against generalisation.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nanoemox.data.manifest import Record
from nanoemox.data.synth import EMOTIONS
from nanoemox.data.synth.vocab import INTENSITIES, INTENTS, ovmer_words, sentiment
from nanoemox.eval.extract import EmotionExtractor
from nanoemox.eval.harness import PREDICTIONS_FILE
from nanoemox.eval.scoring import erg_reference, load_predictions, msa_reference, parse_erg
from nanoemox.eval.sentiment import sentiment_classifier
from nanoemox.features import FeatureCache, media_key, stack_features
from nanoemox.metrics import erg_scores, sentiment_waf
from nanoemox.metrics.emotion import clusters_of
from nanoemox.metrics.wheel import WHEELS, load_tables
from nanoemox.standins import HEADS
from nanoemox.tasks import EMOTION_TASK, REPLY_TASK, get_task

BOOTSTRAP_RESAMPLES = 1000
# Which of a clip's modalities each branch sees.
BRANCH_MODALITY = {"scene": "face", "speech": "voice", "face": "face"}


@dataclass
class Clips:
    """One row per clip of one split: its features and labels (from its MER record)."""

    keys: list[str]
    emotion: np.ndarray  # [N] index into EMOTIONS
    shown: dict[str, np.ndarray]  # modality -> [N] index of the emotion it shows
    cue_group: list[str]
    features: dict[str, torch.Tensor]  # stacked cache rows


def clips_of(records: Sequence[Record], cache: FeatureCache, split: str) -> Clips:
    """The split's clips with cached features, labelled by their MER record."""
    rows = [r for r in records if r.split == split and r.task == EMOTION_TASK and media_key(r) in cache]
    if not rows:
        raise ValueError(f"no MER record of split {split!r} has cached features: the probes have nothing to read")
    index = {e: i for i, e in enumerate(EMOTIONS)}
    shown = {m: np.array([index[r.extra["shown"][m]] for r in rows]) for m in ("face", "voice", "text")}
    features = [cache.get(media_key(r)) for r in rows]
    stacked = {name: torch.stack([f[name] for f in features]).float() for name in features[0]}
    return Clips([media_key(r) for r in rows], np.array([index[r.target] for r in rows]), shown,
                 [r.extra.get("cue_group", "?") for r in rows], stacked)


@torch.no_grad()
def stage_vectors(clips: Clips, model=None, batch: int = 64) -> dict[str, np.ndarray]:
    """One vector per clip and stage: encoder features, and with a model its branch tokens and fused token."""
    f = clips.features
    out = {"encoder/scene": f["scene_cls"].mean(1), "encoder/speech": f["speech_clips"].mean(1),
           "encoder/face": f["face_frames"].mean(1)}
    if model is not None:
        model.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(clips.keys), batch):
            rows = [{k: v[i] for k, v in f.items()} for i in range(start, min(start + batch, len(clips.keys)))]
            tokens = model.modality_tokens(stack_features(rows, dtype=torch.float32))
            for name, t in tokens.items():  # [B, N_m, D] -> [B, D]
                parts.setdefault(name, []).append(t.float().mean(1))
        for name in ("scene", "speech", "face", "fusion"):
            out[f"tokens/{name}"] = torch.cat(parts[name])
        out["tokens/all"] = torch.cat([out[f"tokens/{m}"] for m in ("fusion", "speech", "face", "scene")], dim=1)
    return {k: v.double().numpy() for k, v in out.items()}


def _probe(x: np.ndarray, y: np.ndarray):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x, y)


def probes(train: Clips, splits: dict[str, Clips], model=None) -> dict[str, dict]:
    """Probe accuracy of every stage on each split (fitted on `train`)."""
    vectors = {name: stage_vectors(c, model) for name, c in {"train": train, **splits}.items()}
    out: dict[str, dict] = {}
    for stage in vectors["train"]:
        branch = stage.split("/")[1]
        modality = BRANCH_MODALITY.get(branch)
        target = (lambda c: c.shown[modality]) if modality else (lambda c: c.emotion)
        fitted = _probe(vectors["train"][stage], target(train))
        row: dict[str, Any] = {"label": f"what the {modality} shows" if modality else "the clip's emotion"}
        for name, clips in splits.items():
            hit = fitted.predict(vectors[name][stage]) == target(clips)
            row[name] = float(hit.mean())
            cues = [modality] if modality else ["face", "voice", "text"]
            for cue in cues:  # a branch: clips its modality carries; the fused stages: each single-cue group
                chosen = np.array([cue in g.split("+") if modality else g == cue for g in clips.cue_group])
                row[f"{name}_{cue}_cue_clips"] = float(hit[chosen].mean()) if chosen.any() else None
        out[stage] = row
    return out


# ---------------------------------------------------------------------- the stand-ins' own heads


def stand_in_accuracy(folder: Path, clips: Clips, frames: Sequence[int], windows: Sequence[int]) -> dict[str, float]:
    """Accuracy of the encoder stand-ins' own heads on `clips`, on the frames and window they were trained on."""
    path = folder / HEADS
    if not path.is_file():
        return {}
    weights = load_file(path)
    out = {}
    for name, field, modality, picks in (("vision", "scene_cls", "face", frames),
                                          ("speech", "speech_clips", "voice", windows),
                                          ("face", "face_frames", "face", frames)):
        if f"{name}.weight" not in weights:
            continue
        x = clips.features[field][:, list(picks)]  # [N, K, D]
        logits = x @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]  # [N, K, classes]
        y = torch.as_tensor(clips.shown[modality])[:, None].expand(-1, len(picks))
        out[name] = float((logits.argmax(-1) == y).float().mean())
    return out


# ---------------------------------------------------------------------- per-sample scores, intervals


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p + r > 0, 2 * p * r / (p + r), 0.0)


def _resampled(figure: str, records: list[Record], texts: list[str | None], draws: np.ndarray,
               extractor) -> tuple[float, np.ndarray]:
    """A headline figure of `texts` and its value on every row of `draws` ([R, N] clip indices).

    Each clip is parsed and scored once, with the benchmark's own parsers and metric
    definitions; a resample only re-averages the per-clip parts (for the OV-MER F-score:
    precision and recall per wheel, averaged, then F; for MSA: the weighted F1 of the
    resampled (prediction, reference) pairs). `extractor` finds emotion words (MSA, OV-MER).
    """
    if figure in ("mer_accuracy", "mir_accuracy", "erg_emotion_accuracy"):
        if figure == "erg_emotion_accuracy":
            coarse = {e: e for e in EMOTIONS}
            hits = [erg_scores([""], [parse_erg(t)[0]], [erg_reference(r)], coarse_map=coarse)["emotion_accuracy"]
                    for r, t in zip(records, texts)]
        else:
            task = get_task(figure.split("_")[0])
            hits = [int(t is not None and task.parse(t, r.candidates) == r.target) for r, t in zip(records, texts)]
        hit = np.asarray(hits, dtype=float)
        return float(hit.mean()), hit[draws].mean(1)
    if figure == "msa_waf":
        found = sentiment_classifier(extractor).classify_many([t or "" for t in texts])
        refs = [msa_reference(r.target) for r in records]
        # A missing answer counts as the wrong sign, as the benchmark's scorer counts it.
        preds = [f[0] if t is not None else ("negative" if ref > 0 else "positive")
                 for t, f, ref in zip(texts, found, refs)]
        value = sentiment_waf(preds, refs)["waf"]
        return value, np.array([sentiment_waf([preds[i] for i in row], [refs[i] for i in row])["waf"] for row in draws])
    if figure == "ovmer_fscore":
        tables = load_tables()
        words = extractor.extract_many([t or "" for t in texts])
        shape = (len(records), len(WHEELS))
        prec, rec, counted = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for i, (r, w, t) in enumerate(zip(records, words, texts)):
            for j, wheel in enumerate(WHEELS):
                gold = clusters_of(list(r.target), wheel, tables)
                if not gold:
                    continue  # a reference that maps to nothing is left out, as ov_fscore does
                pred = clusters_of(w if t is not None else [], wheel, tables)
                overlap = len(gold & pred)
                counted[i, j] = 1.0
                prec[i, j] = overlap / len(pred) if pred else 0.0
                rec[i, j] = overlap / len(gold) if pred else 0.0

        def fscore(rows: np.ndarray) -> np.ndarray:  # rows [..., N] -> F-score [...]
            n = counted[rows].sum(-2)
            with np.errstate(invalid="ignore", divide="ignore"):
                p, q = (np.where(n > 0, x[rows].sum(-2) / n, 0.0) for x in (prec, rec))
            return _f1(p, q).mean(-1)

        return float(fscore(np.arange(len(records)))), fscore(draws)
    raise KeyError(figure)


TASK_OF = {"mer_accuracy": "mer", "msa_waf": "msa", "mir_accuracy": "mir", "ovmer_fscore": "ovmer",
           "erg_emotion_accuracy": "erg"}
_STEP_RE = re.compile(r"([1-4])\.\s*\S")  # "N." and some text after it


def think_intact(text: str | None) -> bool:
    """Whether an ERG answer keeps its template (surrounding whitespace aside).

    Intact: it starts with `<think>`, holds one `<think>` and one `</think>`, between them
    exactly four non-empty lines "1. ..." to "4. ..." in order, and a non-empty reply after
    `</think>` (the form of `get_task("erg").format_target`). A missing answer is not intact.
    """
    text = (text or "").strip()
    if not text.startswith("<think>") or text.count("<think>") != 1 or text.count("</think>") != 1:
        return False
    think, reply = text[len("<think>"):].split("</think>")
    lines = [line.strip() for line in think.splitlines() if line.strip()]
    steps = [_STEP_RE.match(line) for line in lines]
    return ([int(m.group(1)) if m else None for m in steps] == [1, 2, 3, 4]) and bool(reply.strip())




def score_texts(records: Sequence[Record], texts: dict[str, str | None], seed: int = 0,
                resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, dict[str, float]]:
    """Each headline figure of `texts` (id -> answer), and the share of intact ERG templates, with 95%
    percentile-bootstrap intervals."""
    extractor = EmotionExtractor()
    rng = np.random.default_rng(seed)
    out = {}
    for figure, task in TASK_OF.items():
        chosen = [r for r in records if r.task == task]
        draws = rng.integers(0, len(chosen), (resamples, len(chosen)))
        value, values = _resampled(figure, chosen, [texts.get(r.id) for r in chosen], draws, extractor)
        low, high = np.percentile(values, [2.5, 97.5])
        out[figure] = {"value": value, "low": float(low), "high": float(high), "n": len(chosen)}
    # After the headline figures, so their draws do not move.
    erg = [r for r in records if r.task == REPLY_TASK]
    intact = np.array([think_intact(texts.get(r.id)) for r in erg], dtype=float)
    values = intact[rng.integers(0, len(erg), (resamples, len(erg)))].mean(1)
    low, high = np.percentile(values, [2.5, 97.5])
    out["erg_think_intact"] = {"value": float(intact.mean()), "low": float(low), "high": float(high), "n": len(erg)}
    return out


# ---------------------------------------------------------------------- baselines


def _answer(task: str, label: Any) -> str:
    """The answer text a model would give for `label` (the task's own answer format)."""
    if task == "msa":
        return sentiment(label)
    if task == "ovmer":
        return ", ".join(ovmer_words(*label))
    if task == "erg":
        fields = {k: "" for k in ("event_scenario", "emotion_cause", "goal_to_response", "reply")}
        return get_task(task).format_target({**fields, "speaker_emotion": label})
    return str(label)


def _label(task: str, record: Record) -> Any:
    """The label a constant baseline answers with, read from a training record."""
    if task == "msa":
        return record.extra["emotion"]
    if task == "ovmer":
        return record.extra["emotion"], record.extra["intensity"]
    if task == "erg":
        return record.target["speaker_emotion"]
    return record.target


def baseline_answers(records: Sequence[Record], train: Sequence[Record], seed: int = 0) -> dict[str, dict[str, str]]:
    """Answers of the "chance" (uniformly random label, seeded) and "majority" (training's commonest) baselines."""
    rng = random.Random(seed)
    options = {"mer": list(EMOTIONS), "msa": list(EMOTIONS), "erg": list(EMOTIONS), "mir": list(INTENTS),
               "ovmer": [(e, i) for e in EMOTIONS for i in INTENSITIES]}
    out: dict[str, dict[str, str]] = {"chance": {}, "majority": {}}
    for task in TASK_OF.values():
        counts = Counter(_label(task, r) for r in train if r.task == task)
        majority = max(counts, key=lambda k: (counts[k], str(k)))
        for r in (r for r in records if r.task == task):
            out["chance"][r.id] = _answer(task, rng.choice(options[task]))
            out["majority"][r.id] = _answer(task, majority)
    return out


def train_subset(records: Sequence[Record], per_task: int, seed: int,
                 tasks: Sequence[str] = tuple(TASK_OF.values())) -> list[Record]:
    """At most `per_task` training records of each of `tasks`, the first of a shuffle seeded with `seed`
    (the same records on every run), in the manifest's order."""
    rng = random.Random(seed)
    chosen: set[str] = set()
    for task in tasks:
        ids = [r.id for r in records if r.split == "train" and r.task == task]
        rng.shuffle(ids)
        chosen.update(ids[:per_task])
    return [r for r in records if r.id in chosen]


def mer_accuracy_by_cue(records: Sequence[Record], texts: dict[str, str | None]) -> dict[str, dict]:
    """MER accuracy of `texts` per cue group (conflict clips left out; a missing answer is wrong)."""
    task = get_task(EMOTION_TASK)
    hits: dict[str, list[int]] = {}
    for r in (r for r in records if r.task == EMOTION_TASK and not r.extra.get("conflict")):
        text = texts.get(r.id)
        hits.setdefault(r.extra.get("cue_group", "?"), []).append(
            int(text is not None and task.parse(text, r.candidates) == r.target))
    return {cue: {"accuracy": sum(h) / len(h), "n": len(h)} for cue, h in sorted(hits.items())}


def read_predictions(folder: Path) -> dict[str, str]:
    """The answers of an evaluation folder (failed samples left out, so they score as missing)."""
    return load_predictions(folder / PREDICTIONS_FILE)
