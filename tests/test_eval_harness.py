"""The evaluation harness: resumable predictions, scoring, tables, confusion figures, `nanoemox eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanoemox.cli import main
from nanoemox.data.manifest import Record, load_manifest, write_manifest
from nanoemox.data.synth import MediaConfig, generate
from nanoemox.eval.harness import (
    PREDICTIONS_FILE,
    ReferenceSet,
    load_references,
    read_predictions,
    reason_overlap,
    run_benchmark,
)
from nanoemox.tasks import get_task

SMALL_MEDIA = MediaConfig(size=64, fps=4, duration=1.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A SynthAffect corpus whose test split has 2 clips x 6 tasks = 12 records."""
    out = tmp_path_factory.mktemp("synth")
    generate(out, 20, seed=0, media=SMALL_MEDIA, workers=1)
    return out


class OraclePredictor:
    """Answers every sample with its formatted reference (or a fixed wrong answer); counts calls.

    Samples whose video file is missing come back as errors, as the real predictor does.
    """

    def __init__(self, wrong: set[str] = frozenset()):
        self.wrong = set(wrong)
        self.seen: list[str] = []

    def answer(self, record: Record) -> str:
        if record.id in self.wrong:
            return "I cannot tell."
        return get_task(record.task).format_target(record.target)

    def predict_records(self, records, root, tasks=None, progress=None):
        for record in records:
            self.seen.append(record.id)
            video = record.media_path("video", root)
            if video is not None and not video.is_file():
                yield record, None, f"{video}: file not found"
            else:
                yield record, self.answer(record), None


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _col(result, name):
    return next(c for c in result["columns"] if c["name"] == name)


# ---------------------------------------------------------------- library, stub predictor
def test_synthaffect_run_scores_every_task(corpus, tmp_path):
    refs = load_references("synthaffect", data_root=corpus)
    records = refs[0].records
    assert len(records) == 12 and {r.task for r in records} == {"msa", "mer", "ovmer", "eri", "mir", "erg"}
    wrong = {r.id for r in records if r.task in ("mer", "eri")}
    oracle = OraclePredictor(wrong={sorted(wrong)[0]})  # one MER or ERI sample answered badly
    ticks = []
    result = run_benchmark("synthaffect", oracle, refs, out_dir=tmp_path, progress=ticks.append)
    assert len(ticks) == 12 and sorted(oracle.seen) == sorted(r.id for r in records)
    names = [c["name"] for c in result["columns"]]
    for name in ("MSA", "MER", "OVMER", "MIR", "ERG emotion accuracy", "ERG Dist-1", "ERI token overlap",
                 "MER accuracy", "MIR accuracy"):
        assert name in names
    assert _col(result, "MSA")["value"] == pytest.approx(100.0)
    assert _col(result, "MIR")["value"] == pytest.approx(100.0)
    assert _col(result, "ERG emotion accuracy")["value"] == pytest.approx(100.0)
    bad_task = sorted(wrong)[0].rsplit("_", 1)[1]
    # The bad answer costs exactly one of the two samples of its task.
    bad_col = "MER accuracy" if bad_task == "mer" else "ERI token overlap"
    assert _col(result, bad_col)["value"] == pytest.approx(50.0)
    # Files: predictions (one line per id, with its task), results, table, figures.
    lines = _lines(tmp_path / PREDICTIONS_FILE)
    assert sorted(e["id"] for e in lines) == sorted(r.id for r in records)
    assert all(set(e) == {"id", "task", "prediction", "decoding"} for e in lines)  # a duck-typed predictor gives no budgets
    assert lines[0]["decoding"]["strategy"] == "greedy"
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {"benchmark", "columns", "run", "confusion", "n_missing"} <= set(saved)
    assert saved["run"]["failed"] == 0 and saved["run"]["predicted"] == 12
    assert (tmp_path / "results.md").read_text().startswith("| Model | MSA | MER |")
    assert sorted(p.name for p in tmp_path.glob("confusion_*.png")) == [
        "confusion_MER.png", "confusion_MIR.png", "confusion_MSA.png"]
    for table in saved["confusion"]:
        assert sum(map(sum, table["matrix"])) == table["n"] == 2
        assert table["columns"][-1] == "other" and table["rows"] == table["columns"][:-1]


def test_resume_runs_only_the_new_samples(corpus, tmp_path):
    refs = load_references("synthaffect", data_root=corpus)
    first = OraclePredictor()
    run_benchmark("synthaffect", first, refs, out_dir=tmp_path, limit=3)
    assert len(first.seen) == 3
    head = (tmp_path / PREDICTIONS_FILE).read_text()
    again = OraclePredictor()
    result = run_benchmark("synthaffect", again, refs, out_dir=tmp_path)
    ids = [r.id for r in refs[0].records]
    assert again.seen == ids[3:]  # the first three were not recomputed
    assert result["run"]["resumed"] == 3 and result["run"]["predicted"] == 9
    assert (tmp_path / PREDICTIONS_FILE).read_text().startswith(head)
    # A third run has nothing left to do.
    third = OraclePredictor()
    result = run_benchmark("synthaffect", third, refs, out_dir=tmp_path)
    assert third.seen == [] and result["run"]["predicted"] == 0 and result["run"]["resumed"] == 12


def test_truncated_last_line_is_cut_and_rerun(corpus, tmp_path):
    refs = load_references("synthaffect", data_root=corpus)
    ids = [r.id for r in refs[0].records]
    run_benchmark("synthaffect", OraclePredictor(), refs, out_dir=tmp_path, limit=4)
    path = tmp_path / PREDICTIONS_FILE
    text = path.read_text()
    path.write_text(text[: len(text) - 15])  # a crash in the middle of the fourth line
    assert sorted(read_predictions(path)) == sorted(ids[:3])
    assert path.read_text().endswith("}\n")  # the broken tail is gone
    again = OraclePredictor()
    run_benchmark("synthaffect", again, refs, out_dir=tmp_path)
    assert again.seen == ids[3:]
    assert [e["id"] for e in _lines(path)] == ids


def test_broken_middle_line_and_changed_settings_are_refused(corpus, tmp_path):
    refs = load_references("synthaffect", data_root=corpus)
    run_benchmark("synthaffect", OraclePredictor(), refs, out_dir=tmp_path, limit=2, seed=0)
    # The seed does not act under greedy decoding, so it does not split a run; sampling does.
    run_benchmark("synthaffect", OraclePredictor(), refs, out_dir=tmp_path, limit=3, seed=1)
    with pytest.raises(ValueError, match="other settings.*decoding.*'do_sample': False.*'do_sample': True"):
        run_benchmark("synthaffect", OraclePredictor(), refs, out_dir=tmp_path, do_sample=True, seed=1)
    path = tmp_path / PREDICTIONS_FILE
    lines = path.read_text().splitlines()
    path.write_text("garbage\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"predictions.jsonl:1: unreadable"):
        read_predictions(path)


def test_missing_media_becomes_an_error_record_counted_wrong(corpus, tmp_path):
    records = load_manifest(corpus / "test.jsonl")
    msa = [r for r in records if r.task == "msa"]
    broken = next(r for r in msa if r.target != 0)  # a sample that MSA scoring keeps
    broken.media = {"video": "media/absent.mp4", "audio": None, "faces": None}
    result = run_benchmark("synthaffect", OraclePredictor(), msa, root=corpus, out_dir=tmp_path)
    assert result["run"]["failed"] == 1 and result["run"]["failed_ids"] == [broken.id]
    entry = next(e for e in _lines(tmp_path / PREDICTIONS_FILE) if e["id"] == broken.id)
    assert entry["prediction"] is None and "absent.mp4" in entry["error"]
    assert result["n_missing"] == 1
    # Every other kept sample is answered right; the failed one counts as wrong.
    details = _col(result, "MSA")["details"]
    assert details["counted"] == sum(r.target != 0 for r in msa)
    assert details["accuracy"] == pytest.approx((details["counted"] - 1) / details["counted"])
    assert "1 failed" in (tmp_path / "results.md").read_text()


def test_emer_needs_a_judge_before_any_inference(tmp_path):
    oracle = OraclePredictor()
    refs = [ReferenceSet(tmp_path, [Record(id="e1", dataset="EMER", split="test", task="eri",
                                           target="He is sad.")])]
    with pytest.raises(ValueError, match="judge"):
        run_benchmark("emer", oracle, refs, out_dir=tmp_path / "o")
    assert oracle.seen == [] and not (tmp_path / "o").exists()


def test_reason_overlap_token_f1():
    assert reason_overlap("The man is sad.", "the man is sad") == pytest.approx(1.0)
    # pred {he, looks, sad} vs ref {he, is, very, sad}: 2 common, P 2/3, R 2/4 -> F1 4/7.
    assert reason_overlap("He looks sad", "He is very sad") == pytest.approx(4 / 7)
    assert reason_overlap(None, "x") == 0.0 and reason_overlap("happy", "sad") == 0.0


def test_mer_unibench_confusion_uses_the_dataset_label_set(tmp_path):
    labels = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
    refs = [Record(id=f"m{i}", dataset="MELD", split="test", task="mer", target=t)
            for i, t in enumerate(["joy", "anger", "joy"])]
    oracle = OraclePredictor(wrong={"m2"})
    result = run_benchmark("mer-unibench", oracle, refs, root=tmp_path, out_dir=tmp_path / "o")
    (table,) = result["confusion"]
    assert table["rows"] == labels and table["columns"] == labels + ["other"]
    joy, anger = labels.index("joy"), labels.index("anger")
    assert table["matrix"][joy][joy] == 1 and table["matrix"][joy][-1] == 1
    assert table["matrix"][anger][anger] == 1
    assert (tmp_path / "o" / "confusion_MELD.png").stat().st_size > 1000
    md = (tmp_path / "o" / "results.md").read_text()
    assert "| Nano-EmoX (paper) | 56.55 |" in md


# ---------------------------------------------------------------- CLI, random tiny model
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(["init-model", "--preset", "tiny", "--out", str(out)]) == 0
    return out


FAST = ["--max-new-tokens", "4", "--no-progress"]


def test_cli_eval_synthaffect_with_tiny_model(corpus, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["eval", "--benchmark", "synthaffect", "--data-root", str(corpus), "--model", str(tiny_model_dir),
                 "--out", str(out), "--limit", "6", "--batch-size", "6", *FAST])
    printed = capsys.readouterr().out
    assert code == 0, printed
    lines = _lines(out / PREDICTIONS_FILE)
    first_clip = [r.id for r in load_manifest(corpus / "test.jsonl")[:6]]
    assert [e["id"] for e in lines] == first_clip
    assert all(isinstance(e["prediction"], str) and "error" not in e for e in lines)
    result = json.loads((out / "results.json").read_text())
    assert result["run"]["n_samples"] == 6 and result["run"]["failed"] == 0
    assert {c["name"] for c in result["columns"]} >= {"MSA", "MER", "OVMER", "MIR", "ERI token overlap"}
    assert "| Model | MSA | MER |" in printed and "Run: 6 samples" in printed
    assert {p.name for p in out.glob("*.png")} == {"confusion_MSA.png", "confusion_MER.png", "confusion_MIR.png"}
    run = json.loads((out / "run.json").read_text())
    assert run["decoding"]["do_sample"] is False and run["decoding"]["seed"] is None and run["max_new_tokens"] == 4
    assert run["effective"]["max_new_tokens"] == {t: 4 for t in ("msa", "mer", "ovmer", "eri", "mir", "erg")}


def test_cli_eval_mer_unibench_with_a_corrupt_clip(corpus, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "media").mkdir()
    clip = sorted((corpus / "media").glob("*.mp4"))[0]
    (tmp_path / "media" / "good.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "media" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    records = [Record(id=f"meld_{i}", dataset="MELD", split="test", task="mer", target=target, text="hello",
                      media={"video": f"media/{name}.mp4", "audio": None, "faces": None})
               for i, (name, target) in enumerate([("good", "joy"), ("broken", "anger"), ("good", "sadness")])]
    write_manifest(tmp_path / "meld.jsonl", records)
    out = tmp_path / "run"
    code = main(["eval", "--benchmark", "mer-unibench", "--references", str(tmp_path / "meld.jsonl"),
                 "--model", str(tiny_model_dir), "--out", str(out), "--batch-size", "3", *FAST])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "| Nano-EmoX (paper) | 56.55 |" in printed and "1 failed" in printed
    entries = {e["id"]: e for e in _lines(out / PREDICTIONS_FILE)}
    assert set(entries) == {"meld_0", "meld_1", "meld_2"}
    assert entries["meld_1"]["prediction"] is None and "broken.mp4" in entries["meld_1"]["error"]
    result = json.loads((out / "results.json").read_text())
    assert result["run"]["failed_ids"] == ["meld_1"] and result["n_missing"] == 1
    assert (out / "confusion_MELD.png").is_file()


def test_cli_eval_reports_problems(corpus, tmp_path, capsys):
    common = ["--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")]
    assert main(["eval", "--benchmark", "emer", "--references", str(corpus / "test.jsonl"), *common]) == 2
    assert "needs --llm-url" in capsys.readouterr().err
    assert main(["eval", "--benchmark", "synthaffect", "--data-root", str(tmp_path / "absent"), *common]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["eval", "--benchmark", "synthaffect", "--references", str(corpus / "test.jsonl"),
                 "--split", "dev", *common]) == 2
    assert "no reference records" in capsys.readouterr().err
