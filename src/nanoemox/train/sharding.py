"""What FSDP changes for the trainer: the Accelerator, gathered checkpoints, sharded optimizer state.

    accelerate launch --config_file configs/accelerate/fsdp_8gpu.yaml -m nanoemox train CONFIG --out OUT
    accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml  -m nanoemox train CONFIG --out OUT

Under FSDP2 (`fully_shard`, applied by `accelerator.prepare`) each process holds a
slice (a DTensor shard) of every parameter, gradient and optimizer state; the layers
named in the config (`fsdp_transformer_layer_cls_to_wrap`) gather their weights for
their forward and backward only. The trainer's files stay those of a one-process run:

- checkpoints hold full tensors: the saved weights (`trainable_state_dict`) and the
  optimizer's states are gathered with `full_tensor()` on every process and written by
  the main one, so a checkpoint loads in one process (`nanoemox analyze --model
  CHECKPOINT`, `nanoemox export`) and resumes under any launch; frozen backbones are
  never gathered for a checkpoint, and the optimizer holds trainable parameters only;
- on resume the full optimizer states are cut back into each process's shard
  (`distribute_tensor(..., src_data_rank=None)`: every process reads the file, nothing
  is sent) after `prepare`, because `prepare` swaps the optimizer's parameters for
  their shards;
- each process's random generators are saved and restored (`rank_rng`), so a resumed
  run draws what the uninterrupted run would have drawn on every process.

Accelerate 1.15 shards only on accelerators: on a machine without a GPU its state is
MULTI_CPU (gloo) and an FSDP plugin is ignored, the model wrapped in DDP instead.
`make_accelerator` therefore sets Accelerate's state to FSDP itself when the launch
asked for FSDP (`ACCELERATE_USE_FSDP=true`, as `accelerate launch` with an FSDP config
sets it) on CPU processes; `accelerator.prepare` then runs Accelerate's own FSDP2 path
(`fsdp2_prepare_model` -> torch's `fully_shard` on a CPU device mesh over gloo), the
same code that shards on GPUs. FSDP1 (`fsdp_version: 1`) is refused.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, gather_object

logger = logging.getLogger(__name__)

# What the trainer logs per process after `prepare` under FSDP (`shares_in_log` reads it back).
SHARE_MESSAGE = ("FSDP: the optimizer holds the %d trainable parameters (%d of their %d elements on this process); "
                 "%d frozen parameters are not in it")


def fsdp_requested() -> bool:
    """Whether the launch asked for FSDP (`accelerate launch` with an FSDP config or `--use_fsdp`)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def make_accelerator(**kwargs) -> Accelerator:
    """Accelerate's Accelerator for this launch; FSDP2 also on CPU processes (see the module's docstring)."""
    cpu = not torch.cuda.is_available()
    # Without a GPU, `cpu=True` is what lets Accelerate see a torchrun launch (gloo).
    accelerator = Accelerator(cpu=cpu, **kwargs)
    if not fsdp_requested():
        return accelerator
    if accelerator.distributed_type == DistributedType.MULTI_CPU:
        plugin = FullyShardedDataParallelPlugin()  # from the launch's FSDP_* variables, as Accelerate reads them
        accelerator.state.fsdp_plugin = plugin
        # Both singletons, as AcceleratorState's own init leaves them on a GPU (each new
        # AcceleratorState() copies PartialState's fields over its own).
        accelerator.state.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        logger.info("FSDP on %d CPU processes (gloo): Accelerate's state set to FSDP", accelerator.num_processes)
    if accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
        raise ValueError("FSDP1 is not supported by the trainer: set `fsdp_version: 2` in the Accelerate config")
    return accelerator


def is_sharded(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


def _dtensor():
    from torch.distributed.tensor import DTensor

    return DTensor


def _whole(value):
    if not isinstance(value, _dtensor()):
        return value
    from torch.distributed._functional_collectives import AsyncCollectiveTensor

    whole = value.full_tensor()
    if isinstance(whole, AsyncCollectiveTensor):  # a wrapper without storage until waited for
        whole = whole.wait()
    return whole.detach().cpu()


def full_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each DTensor shard gathered into its full tensor (every process must call this, in the same order)."""
    return {k: _whole(v) for k, v in tensors.items()}


def full_optimizer_state(optimizer) -> dict[str, Any]:
    """The optimizer's state_dict with every state tensor whole: the format of a one-process optimizer."""
    state = optimizer.state_dict()
    gathered = {pid: {name: _whole(v) for name, v in state["state"][pid].items()} for pid in sorted(state["state"])}
    return {"state": gathered, "param_groups": state["param_groups"]}


def load_optimizer_state(optimizer, saved: dict[str, Any]) -> None:
    """Load a full (one-process format) optimizer state into an optimizer, sharded like its parameters."""
    dtensor = _dtensor()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if any(isinstance(p, dtensor) for p in params):
        from torch.distributed.tensor import distribute_tensor

        state = {}
        for pid, entries in saved["state"].items():
            param = params[int(pid)]
            state[pid] = {
                name: distribute_tensor(value.to(param.dtype), param.device_mesh, param.placements, src_data_rank=None)
                if torch.is_tensor(value) and isinstance(param, dtensor) and value.shape == param.shape else value
                for name, value in entries.items()
            }
        saved = {"state": state, "param_groups": saved["param_groups"]}
    optimizer.load_state_dict(saved)


def check_sharded_optimizer(model: torch.nn.Module, optimizer) -> dict[str, int]:
    """After `prepare` under FSDP: the optimizer holds exactly the trainable parameters, each as this process's shard.

    Returns the counts it checked (logged by the trainer): trainable and frozen parameters, and the
    elements of the trainable ones held here against their full size.
    """
    dtensor = _dtensor()
    held = [p for group in optimizer.param_groups for p in group["params"]]
    named = dict(model.named_parameters())
    trainable, held_ids = {id(p) for p in named.values() if p.requires_grad}, {id(p) for p in held}
    frozen = [n for n, p in named.items() if not p.requires_grad and id(p) in held_ids]
    if frozen or held_ids != trainable or len(held) != len(trainable):
        raise AssertionError(f"under FSDP the optimizer must hold exactly the trainable parameters "
                             f"(frozen ones in it: {frozen[:5]}; {len(held)} held, {len(trainable)} trainable)")
    not_shards = [n for n, p in named.items() if p.requires_grad and not isinstance(p, dtensor)]
    if not_shards:
        raise AssertionError(f"under FSDP every trainable parameter must be a shard; not sharded: {not_shards[:5]}")
    return {"trainable": len(held), "frozen": len(named) - len(held),
            "local_elements": sum(p.to_local().numel() for p in held), "full_elements": sum(p.numel() for p in held)}


def shares_in_log(text: str) -> list[tuple[int, int, int, int]]:
    """Each SHARE_MESSAGE in a log: (trainable parameters, elements held, their full count, frozen parameters)."""
    pattern = re.escape(SHARE_MESSAGE).replace("%d", r"(\d+)")
    return [tuple(int(n) for n in found) for found in re.findall(pattern, text)]


def rank_rng(accelerator: Accelerator, tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
    """Every process's RNG states, for the main process to save: (tensors, metas by rank).

    Rank 0's tensors keep their one-process names (`torch_cpu`); rank r's are prefixed `rank<r>.`.
    """
    if accelerator.num_processes == 1:
        return tensors, [meta]
    everyone = gather_object([(accelerator.process_index, tensors, meta)])
    out, metas = {}, [None] * accelerator.num_processes
    for rank, rank_tensors, rank_meta in everyone:
        out.update({(k if rank == 0 else f"rank{rank}.{k}"): v for k, v in rank_tensors.items()})
        metas[rank] = rank_meta
    return out, metas


def own_rng(tensors: dict[str, torch.Tensor], metas: list[dict[str, Any]], rank: int, world: int):
    """This process's RNG states out of a checkpoint's (`rank_rng`); rank 0's when the number of processes changed."""
    if len(metas) == world and rank > 0:
        prefix = f"rank{rank}."
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, metas[rank]
    if len(metas) != world and rank == 0:
        logger.warning("the checkpoint was written by %d process(es), this run has %d: every process starts from "
                       "the main process's random state, so the resumed run is not bit-identical", len(metas), world)
    return {k: v for k, v in tensors.items() if not k.startswith("rank")}, metas[0]
