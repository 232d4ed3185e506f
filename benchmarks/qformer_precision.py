"""Benchmark: what keeping the Q-Formers in float32 saves under bfloat16.

Builds a model (random weights, fixed seed), runs the scene and speech branches on
the same float32 encoder outputs (cast to the model's dtype, as a bfloat16 model's
encoders would hand them over) in three precisions, and prints the largest relative
error of their output tokens against the float32 run:

- `bf16, Q-Former fp32`: the model cast to bfloat16, Q-Formers kept in float32 (default);
- `bf16 everywhere`: the same with `QueryResampler.keep_fp32 = False`.

Relative error = max |x - x_fp32| / max |x_fp32|, per branch output.

    python benchmarks/qformer_precision.py [--preset tiny|paper] [--out benchmarks/results/qformer_precision.json]

The paper preset builds 2.3B random parameters in float32 (about 9 GB of memory).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _media(config, seed: int = 0) -> dict[str, torch.Tensor]:
    from conftest import make_media

    return make_media(config, batch=2, seed=seed)


def branch_tokens(model, features) -> dict[str, torch.Tensor]:
    """Scene and speech tokens [B, Q, D] for encoder `features` fed in the model's dtype, as float32."""
    dtype = next(model.language.parameters()).dtype
    with torch.no_grad():
        return {"scene": model.scene(features.scene_cls.to(dtype)).float(),
                "speech": model.speech(features.speech_clips.to(dtype)).float()}


def measure(preset: str = "tiny", seed: int = 0) -> dict[str, dict[str, float]]:
    """{setting: {branch: max relative error vs float32}}."""
    from nanoemox.config import get_preset
    from nanoemox.model import build_model
    from nanoemox.model.qformer import QueryResampler

    config = get_preset(preset)
    torch.manual_seed(seed)
    model = build_model(config, pretrained=False).eval()
    media = _media(config, seed)
    with torch.no_grad():  # the same float32 encoder outputs feed every setting: only the branches differ
        features = model.encode_media(media["pixel_values"], media["face_pixel_values"], media["audio_values"])
    reference = branch_tokens(model, features)
    results = {}
    for name, keep in (("bf16, Q-Former fp32", True), ("bf16 everywhere", False)):
        QueryResampler.keep_fp32 = keep
        try:
            low = build_model(config, pretrained=False).eval()
            low.load_state_dict(model.state_dict())
            low = low.to(torch.bfloat16)
            tokens = branch_tokens(low, features)
        finally:
            QueryResampler.keep_fp32 = True
        results[name] = {b: float((tokens[b] - reference[b]).abs().max() / reference[b].abs().max())
                         for b in reference}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--out", default="benchmarks/results/qformer_precision.json")
    args = parser.parse_args()
    results = measure(args.preset)
    for setting, errors in results.items():
        print(f"{setting:22s} " + "  ".join(f"{b}: {e:.2e}" for b, e in errors.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"preset": args.preset, "max_relative_error": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
