"""JSON lines: every bad line named by number; nothing crashes; only a write cut short is repaired."""

from __future__ import annotations

import json

import pytest

from nanoemox.data.manifest import ManifestError, load_manifest
from nanoemox.eval.harness import read_predictions
from nanoemox.eval.scoring import PredictionsError, load_predictions

GOOD = {"id": "a", "dataset": "X", "split": "test", "task": "msa", "media": {}, "target": 1.0}


def test_manifest_lines_name_utf8_nesting_and_nan_problems(tmp_path):
    path = tmp_path / "m.jsonl"
    lines = [json.dumps(GOOD).encode(),
             b'{"id": "b\xff", "dataset": "X"}',
             b"[" * 50_000 + b"]" * 50_000,
             json.dumps({**GOOD, "id": "c"}).replace("1.0", "NaN").encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    text = str(info.value)
    assert "line 2: not valid UTF-8 (byte 0xff at column 10)" in text
    assert "line 3: nested too deeply" in text
    assert "line 4: non-finite number NaN" in text
    assert [r.id for r in load_manifest(path, strict=False)] == ["a"]


def test_predictions_file_rejects_non_strings_and_deep_nesting(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "prediction": "happy"}\n{"id": "b", "prediction": 3}\n'
                    + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(PredictionsError, match=r"line 2: \"prediction\" must be a string[\s\S]*line 3: nested"):
        load_predictions(path)


def test_eval_resume_cuts_only_a_line_cut_short(tmp_path):
    path = tmp_path / "predictions.jsonl"
    good = '{"id": "a", "task": "mer", "prediction": "happy"}\n'
    path.write_text(good + '{"id": "b", "task": "mer", "predi')  # a crash in mid-write
    assert list(read_predictions(path)) == ["a"]
    assert path.read_text() == good
    path.write_text(good + '{"id": "b", "task": "mer", "prediction": 7}\n')  # complete, but wrong
    with pytest.raises(ValueError, match=r"predictions.jsonl:2: unreadable prediction line \(\"prediction\" must"):
        read_predictions(path)
    assert path.read_text().endswith('"prediction": 7}\n')  # nothing deleted
