"""Under bfloat16 the Q-Formers stay float32, as transformers' BLIP-2 keeps them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from nanoemox.model import build_model

ROOT = Path(__file__).resolve().parents[1]


def test_casting_keeps_qformers_float32(tiny_config):
    model = build_model(tiny_config, pretrained=False).to(torch.bfloat16)
    for branch in (model.scene, model.speech):
        resampler = branch.resampler
        assert {p.dtype for p in resampler.qformer.parameters()} == {torch.float32}
        assert resampler.queries.dtype == resampler.position.dtype == torch.float32
        assert resampler.adapter.weight.dtype == torch.bfloat16
    assert next(model.language.parameters()).dtype == torch.bfloat16
    out = model.scene.resampler(torch.randn(2, tiny_config.scene.num_frames, model.scene.width, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_precision_benchmark_measures_the_gain(capsys):
    spec = importlib.util.spec_from_file_location("qp", ROOT / "benchmarks" / "qformer_precision.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.measure("tiny")
    kept, plain = results["bf16, Q-Former fp32"], results["bf16 everywhere"]
    print(f"max relative error vs float32: kept {kept}, bf16 everywhere {plain}")
    assert all(0 < kept[b] < 0.05 for b in kept)
    assert sum(kept.values()) < sum(plain.values())
