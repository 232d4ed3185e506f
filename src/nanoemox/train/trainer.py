"""The P2E trainer on Hugging Face Accelerate.

One run = phases in order; each phase starts from the model folder the previous phase
wrote (the first from the configured preset or folder) and writes its own:

    OUT/init/                      the starting model folder
    OUT/phases/01_<name>/
        checkpoints/step_XXXXXXXX/ periodic and on-signal checkpoints (see checkpoint.py)
        model/                     the phase's final model folder (the hand-over)
        tensorboard/  loss.png     logs and the loss curve
    OUT/model -> the last phase's model folder (a copy of its path in OUT/run.json)

`setup` gathers a phase's parts (model, processor, optimizer, schedule, loader, progress)
into one `PhaseRun` that the training steps take; train/phase_files.py writes the
checkpoints and the hand-over from it.

The same code runs on one CPU, one GPU or many processes (`accelerate launch` /
`torchrun`): Accelerate wraps the model for DDP/FSDP/DeepSpeed and handles mixed
precision; gradient accumulation skips the all-reduce on all but the last micro-batch.
Under FSDP (train/sharding.py) checkpoints and model folders still hold whole tensors,
gathered from the shards, so they load in one process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from tqdm.auto import tqdm

from nanoemox.config import get_preset
from nanoemox.decoding import answer_budgets, write_budgets
from nanoemox.model import NanoEmoX, build_model, build_tokenizer, load_model, save_model, set_trainable
from nanoemox.model.build import check_backbones, random_backbones_of
from nanoemox.model.nanoemox import MediaFeatures
from nanoemox.processor import NanoEmoXProcessor
from nanoemox.train import checkpoint as ckpt
from nanoemox.train.config import ModelSource, PhaseConfig, TrainConfig
from nanoemox.train.data import RunData
from nanoemox.train.optim import build_optimizer, build_scheduler
from nanoemox.train.phase_files import write_checkpoint, write_handover
from nanoemox.train.plots import plot_loss
from nanoemox.train.sharding import (SHARE_MESSAGE, check_sharded_optimizer, is_sharded, load_optimizer_state,
                                     make_accelerator)
from nanoemox.train.state import PhaseRun, PhaseState, restore_phase_state, resume_checkpoint
from nanoemox.utils import atomic_write_json

logger = logging.getLogger(__name__)


class TrainingInterrupted(RuntimeError):
    """A signal asked the run to stop; a checkpoint was written first."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good state was checkpointed first."""


def _mixed_precision(setting: str) -> str:
    if setting == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return setting


def phase_dir(out: Path, index: int, phase: PhaseConfig) -> Path:
    return out / "phases" / f"{index + 1:02d}_{phase.name}"


def write_initial_model(source: ModelSource, target: Path) -> Path:
    """The model folder of a run that starts from a preset: built, backbones checked, saved."""
    config = get_preset(source.preset)
    if source.face_checkpoint:
        config.face.encoder = source.face_checkpoint
    config.random_backbones = random_backbones_of(config, pretrained=True)
    check_backbones(config, allow=source.allow_random_backbones, purpose="training")  # before any download
    tokenizer = build_tokenizer(config)
    model = build_model(config, pretrained=True, tokenizer=tokenizer)
    return save_model(model, target, processor=NanoEmoXProcessor.from_config(config, tokenizer))


class Trainer:
    """Runs a TrainConfig into an output folder; safe to interrupt and resume."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 accelerator: Accelerator | None = None):
        self.config = config
        # Absolute: run.json and the phases' model folders record paths under it.
        self.out = Path(out_dir).expanduser().resolve()
        self.resume = resume
        self.progress = progress
        self.accelerator = accelerator or make_accelerator(
            mixed_precision=_mixed_precision(config.mixed_precision),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
        )
        self._stop_signal: int | None = None
        self.data = RunData(config.data, config.seed)  # records and feature cache, read once for all phases
        self._budgets = None
        # The trained model of the latest phase, unwrapped; under FSDP, a whole copy on the main
        # process (the one its model folder was written from) and None on the others.
        self.model: NanoEmoX | None = None

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # ------------------------------------------------------------------ run

    def train(self) -> Path:
        """All phases in order; returns the final model folder."""
        if self.out.exists() and any(self.out.iterdir()) and not self.resume and (self.out / "run.json").exists():
            raise FileExistsError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        model_dir = self.initial_model()
        with self._signals():
            for index, phase in enumerate(self.config.phases):
                model_dir = self.run_phase(index, phase, model_dir)
        if self.is_main:
            atomic_write_json({"final_model": str(model_dir), "config": self.config.to_dict()}, self.out / "run.json")
            self._plot_run()
        self.accelerator.wait_for_everyone()
        return model_dir

    def initial_model(self) -> Path:
        """The model folder the first phase starts from."""
        source = self.config.model
        if source.path:
            return Path(source.path).expanduser().resolve()
        target = self.out / "init"
        if (target / "config.json").is_file():
            return target
        if self.is_main:
            torch.manual_seed(self.config.seed)
            write_initial_model(source, target)
        self.accelerator.wait_for_everyone()
        return target

    @contextlib.contextmanager
    def _signals(self):
        """SIGTERM/SIGINT finish the current optimizer step, checkpoint, then stop."""
        def handler(signum, frame):
            self._stop_signal = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # ------------------------------------------------------------------ one phase

    def run_phase(self, index: int, phase: PhaseConfig, init_dir: Path) -> Path:
        """Train one phase from the model folder `init_dir`; returns the phase's model folder (its hand-over).

        A phase already marked DONE is skipped; with `resume`, an interrupted one goes on from its newest
        intact checkpoint (`setup`).
        """
        folder = phase_dir(self.out, index, phase)
        final = folder / "model"
        if (final / "config.json").is_file() and (folder / "DONE").is_file():
            logger.info("phase %s already complete, handing over %s", phase.name, final)
            return final
        run = self.setup(phase, init_dir, folder)
        self._loop(run)
        self.model = write_handover(run, self.accelerator,
                                    extra_files=partial(self._save_budgets, processor=run.processor))
        return final

    def _save_budgets(self, folder: Path, processor) -> None:
        """Per-task answer budgets measured on the training targets, stored with the model."""
        if self._budgets is None:
            self._budgets = answer_budgets(self.data.records, processor.tokenizer)
            logger.info("answer budgets (new tokens) from the training targets: %s", self._budgets[0])
        budgets, stats = self._budgets
        if budgets:
            write_budgets(folder, budgets, stats)

    def setup(self, phase: PhaseConfig, init_dir: Path, folder: Path) -> PhaseRun:
        """Model from the hand-over folder, phase groups applied, optimizer, schedule, resume state, data loader.

        The loader (and the blank inputs of modality dropout, which run the encoders) is made
        from the whole model before `prepare`; a checkpoint's optimizer state is loaded after it.
        """
        torch.manual_seed(self.config.seed)
        model = load_model(init_dir)
        check_backbones(model.config, allow=self.config.model.allow_random_backbones, purpose="training")
        processor = NanoEmoXProcessor.from_pretrained(init_dir)
        counts = set_trainable(model, phase.trainable)
        logger.info("phase %s trains %s", phase.name, {g: n for g, n in counts.items() if n})
        model.train()
        optimizer = build_optimizer(model, phase)
        scheduler = build_scheduler(optimizer, phase)
        state = PhaseState()
        latest = resume_checkpoint(folder / "checkpoints", clean=self.is_main) if self.resume else None
        if latest is not None:
            state = restore_phase_state(latest, model, scheduler, rank=self.accelerator.process_index,
                                        world=self.accelerator.num_processes)
            logger.info("resumed phase %s from %s (step %d)", phase.name, latest, state.step)
        loader = self.data.loader(phase, model, processor, start_step=state.step,
                                  rank=self.accelerator.process_index, world_size=self.accelerator.num_processes)
        model, optimizer = self.accelerator.prepare(model, optimizer)
        if state.optimizer is not None:
            load_optimizer_state(optimizer, state.optimizer)
            state.optimizer = None
        if is_sharded(self.accelerator):
            held = check_sharded_optimizer(model, optimizer)
            logger.info(SHARE_MESSAGE, held["trainable"], held["local_elements"], held["full_elements"], held["frozen"])
        return PhaseRun(phase=phase, folder=folder, init_dir=init_dir, model=model, processor=processor,
                        optimizer=optimizer, scheduler=scheduler, loader=loader, state=state)

    # ------------------------------------------------------------------ steps

    def loss_step(self, model, batch: dict[str, Any]) -> torch.Tensor:
        """Forward one micro-batch; the per-sample mean answer-token loss."""
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "ids", "tasks")}
        if "features" in inputs and not isinstance(inputs["features"], MediaFeatures):
            inputs["features"] = MediaFeatures(**inputs["features"])
        with self.accelerator.autocast():
            return model(**inputs, labels=batch["labels"], loss_only=True).loss

    def _loop(self, run: PhaseRun) -> None:
        """Optimizer steps from `run.state.step` to the phase's last: logs the loss every `log_every` steps,
        checkpoints every `save_every` steps (not after the last), and on a stop signal checkpoints and raises
        TrainingInterrupted."""
        phase, state = run.phase, run.state
        writer = self._writer(run.folder)
        batches = iter(run.loader)
        if state.rng is not None:
            # After creating the iterator: starting a DataLoader draws from the global generator.
            ckpt.set_rng_state(*state.rng)
            state.rng = None
        bar = tqdm(total=phase.steps, initial=state.step, desc=phase.name, disable=not (self.progress and self.is_main),
                   dynamic_ncols=True)
        started, done_samples = time.perf_counter(), 0
        try:
            for step in range(state.step, phase.steps):
                loss = self._optimizer_step(run, batches, step)
                state.step = step + 1
                done_samples += phase.samples_per_step(self.accelerator.num_processes)
                rate = done_samples / max(time.perf_counter() - started, 1e-9)
                lr = run.scheduler.get_last_lr()[0]
                if state.step % self.config.log_every == 0 or state.step == phase.steps:
                    state.history.append([state.step, loss])
                    if writer is not None:
                        writer.add_scalar(f"{phase.name}/loss", loss, state.step)
                        writer.add_scalar(f"{phase.name}/lr", lr, state.step)
                        writer.add_scalar(f"{phase.name}/samples_per_s", rate, state.step)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")
                bar.update(1)
                if self._stop_signal is not None:
                    self.save(run)
                    raise TrainingInterrupted(
                        f"stopped by signal {self._stop_signal} at step {state.step} of phase {phase.name}; "
                        "run the same command with --resume to continue"
                    )
                if state.step % self.config.save_every == 0 and state.step < phase.steps:
                    self.save(run)
        finally:
            bar.close()
            if writer is not None:
                writer.close()

    def _optimizer_step(self, run: PhaseRun, batches, step: int) -> float:
        """One optimizer step (index `step`) over `grad_accum` micro-batches from `batches`; their mean loss.

        A NaN or infinite loss checkpoints the state before the step and raises TrainingDiverged.
        """
        phase, model = run.phase, run.model
        total = 0.0
        for micro in range(phase.grad_accum):
            batch = next(batches)
            sync = micro == phase.grad_accum - 1
            context = contextlib.nullcontext() if sync else self.accelerator.no_sync(model)
            with context:
                loss = self.loss_step(model, batch)
                value = self.accelerator.reduce(loss.detach(), reduction="mean").item()
                if not math.isfinite(value):
                    self.save(run)
                    raise TrainingDiverged(
                        f"loss is {value} at step {step + 1} (micro-batch {micro + 1}) of phase {phase.name}, "
                        f"batch ids {batch['ids']}; the last good state is checkpointed in {run.folder / 'checkpoints'}"
                    )
                self.accelerator.backward(loss / phase.grad_accum)
            total += value / phase.grad_accum
        if phase.max_grad_norm:
            self.accelerator.clip_grad_norm_(model.parameters(), phase.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        return total

    # ------------------------------------------------------------------ saving and logs

    def save(self, run: PhaseRun) -> None:
        """A checkpoint of `run` at its step, with the answer budgets (`write_checkpoint`); every process calls it."""
        write_checkpoint(run, self.accelerator, keep_last=self.config.keep_last,
                         extra_files=partial(self._save_budgets, processor=run.processor))

    def _writer(self, folder: Path):
        if not self.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter  # here: tensorboard is slow to import, main process only

        return SummaryWriter(log_dir=str(folder / "tensorboard"))

    def _plot_run(self) -> None:
        curves = {}
        for index, phase in enumerate(self.config.phases):
            path = phase_dir(self.out, index, phase) / "history.json"
            if path.is_file():
                curves[phase.name] = json.loads(path.read_text(encoding="utf-8"))["history"]
        if curves:
            plot_loss(curves, self.out / "loss.png", cumulative=True)
