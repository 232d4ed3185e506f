"""The shipped Accelerate launch configs pass Accelerate's own checks: each file loads as a cluster config
(unknown keys are refused there), the DeepSpeed section builds Accelerate's DeepSpeed plugin (ZeRO-2 as
documented; DeepSpeed itself is not installed and has not run), and every layer class FSDP wraps exists."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DeepSpeedPlugin, DistributedType

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_each_config_loads_with_accelerate(name):
    config = load_config_from_file(str(CONFIGS / name))
    assert config.num_processes >= 1 and config.num_machines == 1
    assert config.distributed_type in (DistributedType.MULTI_GPU, DistributedType.FSDP, DistributedType.DEEPSPEED)


def test_deepspeed_config_builds_accelerates_zero2_plugin():
    config = load_config_from_file(str(CONFIGS / "deepspeed_zero2.yaml"))
    assert config.distributed_type == DistributedType.DEEPSPEED
    plugin = DeepSpeedPlugin(**config.deepspeed_config)
    ds = plugin.deepspeed_config
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "none"
    assert ds["gradient_accumulation_steps"] == 1 and ds["gradient_clipping"] == 1.0


def test_fsdp_wraps_layer_classes_that_exist():
    config = load_config_from_file(str(CONFIGS / "fsdp_8gpu.yaml"))
    names = config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    modules = [importlib.import_module(f"transformers.models.{m}.modeling_{m}") for m in ("qwen2", "clip", "hubert", "swin")]
    for name in names:
        assert any(isinstance(getattr(m, name, None), type) for m in modules), f"{name} is not a layer class of the backbones"
