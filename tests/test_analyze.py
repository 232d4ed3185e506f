"""`nanoemox analyze`: one clip, folders and manifests, results files, resume, exit codes."""

from __future__ import annotations

import json

import pytest

from nanoemox.cli import main
from nanoemox.data.manifest import Record, write_manifest
from nanoemox.inference import default_candidates
from nanoemox.media.synth import write_audio, write_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    write_video(folder / "one.mp4", seconds=0.8, fps=10, size=(32, 32), audio_rate=16000)
    write_video(folder / "two.mkv", seconds=0.5, fps=10, size=(32, 32))
    (folder / "three.mp4").write_bytes(b"\x00\x01 definitely not a video")
    (folder / "notes.md").write_text("not media, ignored")
    return folder


def _analyze(model_dir, *args):
    return main(["analyze", *map(str, args), "--model", str(model_dir), "--max-new-tokens", "6", "--no-progress"])


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_single_clip_json(model_dir, clips, capsys):
    code = _analyze(model_dir, clips / "one.mp4", "--tasks", "msa,mer,ovmer,erg", "--subtitle", "I did it!", "--json")
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["id"] == "one" and result["input"].endswith("one.mp4")
    assert set(result["answers"]) == {"msa", "mer", "ovmer", "erg"}
    assert result["audio_present"] is True and result["faces_found"] == 8
    assert isinstance(result["answers"]["ovmer"]["parsed"], list)
    assert set(result["answers"]["erg"]["parsed"]) == {"think", "reply", "emotion"}
    for entry in result["answers"].values():
        assert isinstance(entry["text"], str) and "probabilities" not in entry


def test_readable_output_and_audio_only_input(model_dir, tmp_path, capsys):
    wav = write_audio(tmp_path / "voice.wav", seconds=0.5)
    assert _analyze(model_dir, wav, "--tasks", "msa") == 0
    out = capsys.readouterr().out
    assert "voice.wav" in out and "audio: yes" in out and "faces in 0/8 frames" in out and "msa" in out


def test_score_decoding_gives_candidate_labels(model_dir, clips, capsys):
    code = _analyze(model_dir, clips / "one.mp4", "--tasks", "msa,mer,mir", "--decode", "score",
                    "--candidates", "calm,furious,glad", "--json")
    assert code == 0
    answers = json.loads(capsys.readouterr().out)["answers"]
    assert answers["mer"]["parsed"] in ("calm", "furious", "glad")
    assert list(answers["mer"]["probabilities"]) == ["calm", "furious", "glad"]
    assert answers["mir"]["parsed"] in default_candidates("mir")
    assert answers["msa"]["parsed"] in default_candidates("msa")
    for entry in answers.values():
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0)


def test_folder_batch_with_errors_and_resume(model_dir, clips, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    code = _analyze(model_dir, clips, "--tasks", "msa,mir", "--out", out, "--batch-size", "3")
    assert code == 1  # three.mp4 is broken
    results = {r["id"]: r for r in _lines(out)}
    assert set(results) == {"one", "two", "three"}
    assert "error" in results["three"] and "three.mp4" in results["three"]["error"]
    assert set(results["one"]["answers"]) == {"msa", "mir"} and results["two"]["audio_present"] is False
    assert "1 of 3 input(s) failed" in capsys.readouterr().err
    # A crash left half a line behind; resume keeps every finished input and does the rest.
    kept = [json.dumps(results["one"]), json.dumps(results["two"])]
    out.write_text("\n".join(kept) + '\n{"id": "thr')
    code = _analyze(model_dir, clips, "--tasks", "msa,mir", "--out", out, "--resume")
    assert code == 1
    ids = [r["id"] for r in _lines_lenient(out)]
    assert ids == ["one", "two", "three"]
    assert _analyze(model_dir, clips, "--tasks", "msa,mir", "--out", out, "--resume") == 0
    assert [r["id"] for r in _lines_lenient(out)] == ["one", "two", "three"]


def _lines_lenient(path):
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def test_manifest_input(model_dir, clips, tmp_path):
    records = [
        Record(id="m1", dataset="d", split="test", task="mer", media={"video": "one.mp4"}, candidates=["a", "b"]),
        Record(id="m2", dataset="d", split="test", task="eri", media={"video": "two.mkv"}, text="why"),
        Record(id="m3", dataset="d", split="test", task="msa", media={"video": "gone.mp4"}),
    ]
    manifest = tmp_path / "test.jsonl"
    write_manifest(manifest, records)
    out = tmp_path / "res.jsonl"
    code = _analyze(model_dir, manifest, "--root", clips, "--out", out, "--tasks", "mer,msa")
    assert code == 1
    rows = _lines(out)
    assert [r["id"] for r in rows] == ["m1", "m3"]
    assert set(rows[0]["answers"]) == {"mer"} and "gone.mp4" in rows[1]["error"]


@pytest.mark.parametrize("inputs,extra", [
    (["one.mp4"], ["--tasks", "msa,telepathy"]),
    (["one.mp4"], ["--resume"]),
    (["one.mp4", "two.mkv"], ["--subtitle", "x"]),
])
def test_usage_errors_exit_2(model_dir, clips, inputs, extra, capsys):
    assert _analyze(model_dir, *[clips / name for name in inputs], *extra) == 2
    assert "error" in capsys.readouterr().err


def test_missing_model_folder_is_a_usage_error(clips, tmp_path, capsys):
    assert main(["analyze", str(clips / "one.mp4"), "--model", str(tmp_path / "nothing")]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_unusable_paths_become_error_records(model_dir, clips, tmp_path, capsys):
    """A missing file, a folder without media and an unreadable subtitle each get an error line;
    the other inputs are answered, in input order; a batch of nothing usable fails with exit 1."""
    (tmp_path / "empty.mp4").mkdir()
    bad_text = tmp_path / "copy.mp4"
    bad_text.write_bytes((clips / "one.mp4").read_bytes())
    bad_text.with_suffix(".txt").write_bytes(b"\xff\xfe not utf-8 \xff")
    out = tmp_path / "results.jsonl"
    code = _analyze(model_dir, tmp_path / "gone.mp4", clips / "one.mp4", tmp_path / "empty.mp4", bad_text,
                    "--tasks", "msa", "--out", out)
    assert code == 1
    rows = _lines(out)
    assert [r["id"] for r in rows] == ["gone", "one", "empty", "copy"]
    gone, one, empty, copy = rows
    assert "answers" in one and "error" not in one
    assert gone["error"].startswith("MediaNotFound: ") and "gone.mp4: no such file" in gone["error"]
    assert empty["error"].startswith("UnusableInput: ") and "empty.mp4: a folder holding no video" in empty["error"]
    assert "copy.txt" in copy["error"] and "cannot be read" in copy["error"]
    assert "3 of 4 input(s) failed" in capsys.readouterr().err
    # Nothing usable: error records only, exit 1; a wrong --model is still a usage error.
    assert _analyze(model_dir, tmp_path / "gone.mp4", "--json") == 1
    assert json.loads(capsys.readouterr().out)["error"].startswith("MediaNotFound: ")
    assert main(["analyze", str(tmp_path / "gone.mp4"), "--model", str(tmp_path / "no-model")]) == 2
