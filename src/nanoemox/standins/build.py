"""`nanoemox standins build`: pre-train the four stand-in backbones from scratch, check them, package them.

Stages, each written under `OUT/work/` so that a rerun resumes after the last finished one
(every stage reseeds every generator before it starts, so a resumed build writes what an
uninterrupted one writes):

1. `corpus`: a SynthAffect corpus of the stand-ins' own seed (`corpus_seed`, never the
   demo's), split into train and held-out clips; only the encoders read it;
2. `init`: the whole-word tokenizer (`nanoemox.tokenizer.build_word_tokenizer`, fitted to
   what the language stand-in reads and an English word list) and the random model;
3. `language`: the language stand-in reads general text (`nanoemox.standins.language`);
4. `encoders`: the scene, speech and face encoders learn what a face or a voice shows on
   the corpus's training clips (`nanoemox.standins.pretrain.pretrain_encoders`);
5. `package`: the four backbones in 16-bit safetensors, the tokenizer and the encoders'
   heads in `OUT`;
6. `checks`: held-out checks on the packaged weights (generic instructions, the oracle
   reading test in four variants, the encoders' heads on held-out clips), then
   `OUT/manifest.json` with the command, the commit, what each backbone read, steps,
   losses, the checks and the hash of every file.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, Qwen2ForCausalLM

from nanoemox.data.manifest import load_manifest
from nanoemox.data.synth import EMOTIONS, generate
from nanoemox.model import build_model
from nanoemox.model.language import base_state_dict
from nanoemox.model.saving import BACKBONE_DIRS
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.reproducible import reproducible, seed_all
from nanoemox.standins import HEADS, MANIFEST, TOKENIZER_DIR, WORK_DIR, file_hashes, standin_config
from nanoemox.standins.checks import MODES, held_out_turns, instruction_accuracy, oracle_reading
from nanoemox.standins.language import flat_texts
from nanoemox.standins.pretrain import (PretrainConfig, decode_training_clips, head_accuracy, pretrain_encoders,
                                        pretrain_language, stand_in_texts, tokenizer_words)
from nanoemox.tokenizer import build_word_tokenizer
from nanoemox.utils import atomic_save_safetensors

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
ENCODERS = ("scene", "speech", "face")


@dataclass
class BuildConfig:
    clips: int = 1000  # the stand-ins' own SynthAffect corpus: 800 training clips, 200 held out
    corpus_seed: int = 1001  # never the demo's seed (0): the encoders never see a demo clip
    split_fractions: tuple[float, float, float] = (0.8, 0.2, 0.0)
    seed: int = 0
    threads: int = 2
    workers: int = 2
    reading: PretrainConfig = field(default_factory=PretrainConfig)
    held_out_turns: int = 200  # generic instruction turns of the held-out check
    oracle_steps: int = 300

    @classmethod
    def short(cls) -> "BuildConfig":
        """A few minutes: proves the pipeline, not the figures (tests, a first try)."""
        return cls(clips=60, reading=PretrainConfig(vision_epochs=1, speech_epochs=1, face_epochs=1, lm_steps=20,
                                                    lm_sentences=200, lm_feelings=200, lm_instructions=200,
                                                    lm_copies=200, lm_framed=200),
                   held_out_turns=20, oracle_steps=20)


def _build_config(vocab_size: int):
    """The stand-ins' model config as the build trains it: LoRA (B = 0) takes no part, so no dropout to pay for."""
    config = standin_config()
    config.lora.dropout = 0.0
    config.language.model_config["vocab_size"] = vocab_size
    return config


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Build:
    """One build into `out`; `run()` does every stage not yet done."""

    def __init__(self, out: Path, cfg: BuildConfig, progress: Progress | None = None, command: str = ""):
        self.out, self.cfg, self.progress, self.command = Path(out).expanduser().resolve(), cfg, progress, command
        self.work = self.out / WORK_DIR
        self.reading = replace(cfg.reading, seed=cfg.seed, workers=cfg.workers)
        self.seconds: dict[str, float] = {}

    def _stage(self, name: str, fn):
        start = time.perf_counter()
        logger.info("stand-ins: %s", name)
        seed_all(self.cfg.seed)
        result = fn()
        self.seconds[name] = round(time.perf_counter() - start, 1)
        return result

    def _settings(self) -> dict:
        """What a stage's result depends on: the build's config but the worker count (decoding order is fixed)."""
        settings = asdict(self.cfg)
        settings.pop("workers")
        settings["reading"].pop("workers")
        return settings

    def _metrics(self, name: str) -> dict | None:
        """A finished stage's figures; None when it is still to run. A stage finished with other settings is
        refused: resuming it would mix two builds."""
        path = self.work / f"{name}.json"
        if not path.is_file():
            return None
        metrics = json.loads(path.read_text())
        if metrics.get("settings") != json.loads(json.dumps(self._settings())):
            raise ValueError(f"{path}: this stage was built with other settings than this build's; delete "
                             f"{self.work} (or build into another --out) to start again")
        return {k: v for k, v in metrics.items() if k != "settings"}

    def _done(self, name: str, metrics: dict) -> None:
        path = self.work / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**metrics, "settings": self._settings()}, indent=2) + "\n")
        tmp.replace(path)  # a stage counts as done only once its figures are whole

    def run(self) -> dict:
        self.work.mkdir(parents=True, exist_ok=True)
        with reproducible(self.cfg.seed, self.cfg.threads):
            corpus = self._stage("corpus", self.corpus)
            records = load_manifest(corpus / "manifest.jsonl")
            self._stage("init", lambda: self.init(records))
            language = self._metrics("language") or self._stage("language", lambda: self.language(records))
            encoders = self._metrics("encoders") or self._stage("encoders", lambda: self.encoders(corpus, records))
            self._stage("package", self.package)
            checks = self._stage("checks", lambda: self.checks(corpus, records))
        return self.manifest(records, language, encoders, checks)

    # ------------------------------------------------------------------ stages

    def corpus(self) -> Path:
        corpus = self.work / "synthaffect"
        if not (corpus / "synthaffect.json").is_file():
            generate(corpus, self.cfg.clips, seed=self.cfg.corpus_seed, workers=self.cfg.workers,
                     split_fractions=self.cfg.split_fractions)
        return corpus

    def init(self, records) -> None:
        """The tokenizer and the random model every later stage starts from (saved once)."""
        folder = self.work / "init"
        if (folder / "config.json").is_file():
            return
        tokenizer, _ = stand_in_tokenizer(self.reading, records)
        config = _build_config(len(tokenizer))
        model = build_model(config, pretrained=False, tokenizer=tokenizer)
        model.save_pretrained(folder, self_contained=True, processor=NanoEmoXProcessor.from_config(config, tokenizer))

    def _model(self, stages=()):
        """The init model with the backbones of finished `stages` loaded; and its processor."""
        init = self.work / "init"
        processor = NanoEmoXProcessor.from_pretrained(init)
        config = _build_config(len(processor.tokenizer))
        encoders = self.work / "encoders" if "encoders" in stages else init
        for backbone in ENCODERS:
            getattr(config, backbone).encoder = str(encoders / BACKBONE_DIRS[backbone])
        config.language.model = str((self.work if "language" in stages else init) / BACKBONE_DIRS["language"])
        config.language.tokenizer = str(init / TOKENIZER_DIR)
        return build_model(config, pretrained=True, tokenizer=processor.tokenizer), processor

    def language(self, records) -> dict:
        model, processor = self._model()
        start = time.perf_counter()
        metrics = pretrain_language(model, processor, records, self.reading, self.progress)
        metrics["seconds"] = round(time.perf_counter() - start, 1)
        model.language.save_pretrained(self.work / BACKBONE_DIRS["language"],
                                       state_dict=base_state_dict(model.language))
        self._done("language", metrics)
        return metrics

    def encoders(self, corpus: Path, records) -> dict:
        start = time.perf_counter()
        model, processor = self._model()
        data = decode_training_clips(records, processor, str(corpus), self.reading, list(EMOTIONS), self.progress)
        metrics, heads = pretrain_encoders(model, data, list(EMOTIONS), self.reading, self.progress)
        metrics["seconds"] = round(time.perf_counter() - start, 1)
        for backbone in ENCODERS:
            getattr(model, backbone).encoder.save_pretrained(self.work / "encoders" / BACKBONE_DIRS[backbone])
        tensors = {f"{name}.{p}": t for name, head in heads.items() for p, t in head.state_dict().items()}
        atomic_save_safetensors(tensors, self.work / "encoders" / HEADS)
        self._done("encoders", metrics)
        return metrics

    def package(self) -> None:
        """The backbones in 16-bit (bfloat16 keeps float32's range), the tokenizer and the heads, in `out`."""
        sources = {BACKBONE_DIRS[b]: self.work / "encoders" / BACKBONE_DIRS[b] for b in ENCODERS}
        sources[BACKBONE_DIRS["language"]] = self.work / BACKBONE_DIRS["language"]
        sources[TOKENIZER_DIR] = self.work / "init" / TOKENIZER_DIR
        for name, source in sources.items():
            target = self.out / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target)
            for path in target.glob("*.safetensors"):
                tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in load_file(path).items()}
                atomic_save_safetensors(tensors, path, metadata={"format": "pt"})
        shutil.copy(self.work / "encoders" / HEADS, self.out / HEADS)

    def checks(self, corpus: Path, records) -> dict:
        """Held-out checks on the packaged (16-bit) weights."""
        tokenizer = AutoTokenizer.from_pretrained(self.out / TOKENIZER_DIR)
        lm = Qwen2ForCausalLM.from_pretrained(self.out / BACKBONE_DIRS["language"], dtype=torch.float32)
        read = {q for q, _ in stand_in_texts(self.reading)["instructions"]}
        turns = held_out_turns(self.cfg.seed + 7919, self.cfg.held_out_turns, read)
        out: dict = {"generic_instructions": instruction_accuracy(lm, tokenizer, turns)}
        processor = NanoEmoXProcessor.from_pretrained(self.work / "init")
        out["oracle_reading"] = {mode: oracle_reading(lm, processor, mode, steps=self.cfg.oracle_steps,
                                                      seed=self.cfg.seed) for mode in MODES}
        out["encoder_heads_held_out"] = self._heads_held_out(corpus, records)
        self._done("checks", out)
        return out

    def _heads_held_out(self, corpus: Path, records) -> dict:
        """The encoders' heads on the corpus's held-out clips (the frames and window they trained on)."""
        model, processor = self._model(stages=("encoders",))
        data = decode_training_clips(records, processor, str(corpus), self.reading, list(EMOTIONS), split="dev")
        out = head_accuracy(model, load_file(self.out / HEADS), data)
        out["clips"] = len({r.media.get("video") for r in records if r.split == "dev"})
        return out

    # ------------------------------------------------------------------ manifest

    def manifest(self, records, language: dict, encoders: dict, checks: dict) -> dict:
        cfg = self.cfg
        train_clips = len({r.media.get("video") for r in records if r.split == "train"})
        tokenizer = AutoTokenizer.from_pretrained(self.out / TOKENIZER_DIR)
        manifest = {
            "command": self.command or "nanoemox standins build",
            "commit": _commit(),
            "build_seconds": {**self.seconds, "language": language["seconds"], "encoders": encoders["seconds"]},
            "config": asdict(cfg),
            "corpus": {"generator": "SynthAffect", "seed": cfg.corpus_seed, "clips": cfg.clips,
                       "training_clips": train_clips},
            "language": {
                "architecture": {**standin_config().language.model_config, "vocab_size": len(tokenizer)},
                "vocab_size": len(tokenizer),
                "read": "general English written for it (nanoemox.standins.language: everyday sentences, sentences "
                        "about feelings, what emotion words and speech acts mean, generic instruction turns alone "
                        "and inside the prompt framing with empty placeholders) and copying of random tokens over "
                        "its whole vocabulary; no SynthAffect sentence, no task instruction or answer format of the "
                        "six tasks, no clip",
                "steps": self.reading.lm_steps, "batch_size": self.reading.batch_size, **language},
            "encoders": {
                "read": f"single frames / face crops (frames {list(self.reading.frames)}) and one 2 s audio window "
                        f"(window {list(self.reading.windows)}) of the {train_clips} training clips of the stand-ins' "
                        f"own SynthAffect corpus (seed {cfg.corpus_seed}), each labelled with the expression the face "
                        "or the prosody the voice shows; no task, no text, no clip of the demo's corpus",
                "epochs": {"vision": self.reading.vision_epochs, "speech": self.reading.speech_epochs,
                           "face": self.reading.face_epochs}, **encoders},
            "checks": checks,
            "storage": "bfloat16 safetensors",
        }
        manifest["files"] = file_hashes(self.out)
        (self.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest


def stand_in_tokenizer(reading: PretrainConfig, records) -> tuple:
    """(the whole-word tokenizer, the texts it is fitted to): what the language stand-in reads, and the
    word list of the corpus's training texts and of the task instructions, one word per text.

    The word list is what a real tokenizer's vocabulary already holds; the language stand-in
    meets these words only in its copying samples (random tokens in random order), never in
    their sentences.
    """
    texts, words = flat_texts(stand_in_texts(reading)), tokenizer_words(records)
    return build_word_tokenizer(standin_config(), texts, words), texts + words


def build_standins(out: str | Path, cfg: BuildConfig | None = None, progress: Progress | None = None,
                   command: str = "") -> dict:
    """Build (or resume building) the stand-ins into `out`; returns the manifest."""
    return Build(Path(out), cfg or BuildConfig(), progress, command).run()
