"""MER-UniBench sets in the layouts AffectGPT distributes: counts, label mapping, media, loud failures.

Every tree is written by the tests from the published facts (label file names and
keys, label orders, subtitle files, media folder names); no dataset file is copied.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanoemox.cli import main
from nanoemox.data.converters import AnnotationError, convert
from nanoemox.eval.harness import load_references, mer_unibench_folders
from nanoemox.eval.scoring import markdown_table, score_predictions

from conftest import touch, write

MELD_ORDER = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")


def engchi(root, names, file="transcription-engchi-polish.csv"):
    rows = "".join(f"{n},中文{n},english {n}\n" for n in names)
    write(root, file, "name,chinese,english\n" + rows)


def mer2023(root, train=3, test1=4, test2=2, test3=2):
    words = ("neutral", "angry", "happy", "sad", "worried", "surprise")
    corpus = lambda prefix, n: {f"{prefix}_{i:04d}": {"emo": words[i % 6], "val": 0.0} for i in range(n)}
    np.savez_compressed(root / "label-6way.npz", train_corpus=corpus("train", train),
                        test1_corpus=corpus("sample", test1), test2_corpus=corpus("t2", test2),
                        test3_corpus=corpus("t3", test3))
    names = [f"sample_{i:04d}" for i in range(test1)] + [f"train_{i:04d}" for i in range(train)]
    engchi(root, names)
    for n in names:
        touch(root, f"video/{n}.avi", f"audio/{n}.wav", f"openface_face/{n}.npy")
    return names


def meld(root, indices=(0, 1, 2, 3, 4, 5, 6, 3)):
    test = {f"dia{i}_utt0": {"emo": np.int64(e), "val": 0.0} for i, e in enumerate(indices)}
    np.savez_compressed(root / "label.npz", train_corpus={"dia100_utt0": {"emo": 1, "val": 0.0}},
                        val_corpus={"dia200_utt0": {"emo": 2, "val": 0.0}}, test_corpus=test)
    engchi(root, list(test))
    for n in list(test) + ["dia100_utt0", "dia200_utt0"]:
        touch(root, f"subvideo/{n}.mp4", f"subaudio/{n}.wav")
    return test


def iemocap(root):
    corpus = {"Ses01F_impro01_F000": {"emo": 0, "val": 0.0}, "Ses04M_script01_M001": {"emo": 3, "val": 0.0},
              "Ses05F_impro02_F003": {"emo": 3, "val": 0.0}, "Ses05M_script02_M010": {"emo": 1, "val": 0.0},
              "Ses05F_impro03_F001": {"emo": 2, "val": 0.0}}
    np.savez_compressed(root / "label_4way.npz", whole_corpus=corpus)
    engchi(root, list(corpus))
    for n in corpus:
        touch(root, f"subvideo-tgt/{n}.avi", f"subaudio/{n}.wav")
    return corpus


def msa(root, video_dir, audio_dir, vals=(1.2, -0.6, 0.0, 2.4)):
    test = {f"clip_{i}": {"emo": "", "val": float(v)} for i, v in enumerate(vals)}
    np.savez_compressed(root / "label.npz", train_corpus={"tr_0": {"val": 0.5}}, val_corpus={"va_0": {"val": -1.0}},
                        test_corpus=test)
    engchi(root, list(test))
    for n in test:
        touch(root, f"{video_dir}/{n}.mp4", f"{audio_dir}/{n}.wav")
    return test


def ovmerd(root, names=("samplenew3_00000001", "samplenew3_00000002")):
    rows = "".join(f"{n},\"['happy', 'relaxed']\"\n" for n in names)
    write(root, "track2_train_ovmerd.csv", "name,openset\n" + rows)
    write(root, "subtitle_chieng.csv", "name,chinese,english\n" + "".join(f"{n},你好,hello\n" for n in names))
    for n in names:
        touch(root, f"video/{n}.mp4", f"audio/{n}.wav")


def bench_tree(root):
    """All nine sets under AffectGPT's folder names."""
    sets = {"mer2023-dataset-process": lambda d: mer2023(d),
            "meld-process": lambda d: meld(d),
            "iemocap-process": lambda d: iemocap(d),
            "cmumosi-process": lambda d: msa(d, "subvideo", "subaudio"),
            "cmumosei-process": lambda d: msa(d, "subvideo_new", "subaudio"),
            "sims-process": lambda d: msa(d, "video", "audio"),
            "simsv2-process": lambda d: msa(d, "video_new", "audio"),
            "ovmerdplus-process": lambda d: ovmerd(d)}
    for folder, build in sets.items():
        (root / folder).mkdir(parents=True)
        build(root / folder)
    mer24 = root / "mer2024-dataset-process"
    mer24.mkdir()
    words = ("neutral", "angry", "happy", "sad", "worried", "surprise")
    test1 = {f"samplenew_{i:05d}": {"emo": words[i % 6], "val": 0.0} for i in range(5)}
    np.savez_compressed(mer24 / "label-6way.npz", train_corpus={"sample_00000001": {"emo": "happy", "val": 0.0}},
                        test1_corpus=test1, test2_corpus={"x": {"emo": "sad", "val": 0.0}})
    write(mer24, "transcription_merge.csv", "name,chinese\n" + "".join(f"{n},中文字幕\n" for n in test1))
    for n in test1:
        touch(mer24, f"video/{n}.mp4", f"audio/{n}.wav")
    return root


# ---------------------------------------------------------------- converters, set by set
def test_mer2023_release_counts_subtitles_media_and_face_stacks(tmp_path):
    names = mer2023(tmp_path, train=3, test1=4)
    result = convert("MER2023", tmp_path)
    assert result.counts() == {"test/mer": 4, "train/mer": 3}  # test2/test3 are not the benchmark
    rec = next(r for r in result.records if r.id == "mer2023_sample_0001")
    assert (rec.target, rec.text, rec.split) == ("angry", "english sample_0001", "test")
    assert rec.media == {"video": "video/sample_0001.avi", "audio": "audio/sample_0001.wav",
                         "faces": "openface_face/sample_0001.npy"}
    assert result.missing == [] and result.media_found == {"video": 7, "audio": 7, "faces": 7}
    assert result.layout.startswith("MER-UniBench MER2023 (label-6way.npz)")
    assert result.sources[0] == {"file": "label-6way.npz",
                                 "keys": {"train_corpus": 3, "test1_corpus": 4, "test2_corpus": 2, "test3_corpus": 2}}
    assert result.sources[1]["file"] == "transcription-engchi-polish.csv"
    assert len(names) == 7


def test_mer2024_subtitles_without_english_and_test1(tmp_path):
    bench_tree(tmp_path)
    result = convert("MER2024", tmp_path / "mer2024-dataset-process", split="test")
    assert len(result.records) == 5 and all(r.text == "中文字幕" for r in result.records)
    assert {r.target for r in result.records} <= {"neutral", "angry", "happy", "sad", "worried", "surprise"}


def test_meld_indices_follow_the_datasets_own_order(tmp_path):
    test = meld(tmp_path)
    result = convert("MELD", tmp_path)
    assert result.counts() == {"dev/mer": 1, "test/mer": 8, "train/mer": 1}
    recs = {r.extra["name"]: r for r in result.records}
    assert [recs[n].target for n in test] == [MELD_ORDER[i] for i in (0, 1, 2, 3, 4, 5, 6, 3)]
    assert recs["dia100_utt0"].target == "joy" and recs["dia200_utt0"].split == "dev"
    assert all(t in r.candidates for r in recs.values() for t in [r.target])
    assert recs["dia0_utt0"].media["video"] == "subvideo/dia0_utt0.mp4"
    assert recs["dia0_utt0"].media["audio"] == "subaudio/dia0_utt0.wav" and result.missing == []


def test_iemocap_whole_corpus_session5_is_test(tmp_path):
    iemocap(tmp_path)
    result = convert("IEMOCAP", tmp_path)
    assert result.counts() == {"test/mer": 3, "train/mer": 2}
    recs = {r.extra["name"]: r for r in result.records}
    assert recs["Ses05F_impro02_F003"].target == "angry"   # index 3 = anger, spelled as the label set
    assert recs["Ses05M_script02_M010"].target == "sad" and recs["Ses01F_impro01_F000"].target == "happy"
    assert recs["Ses05F_impro03_F001"].media["video"] == "subvideo-tgt/Ses05F_impro03_F001.avi"
    assert {r.split for n, r in recs.items() if n.startswith("Ses05")} == {"test"}


@pytest.mark.parametrize("name,folder,video_dir,audio_dir", [
    ("MOSI", "cmumosi-process", "subvideo", "subaudio"),
    ("MOSEI", "cmumosei-process", "subvideo_new", "subaudio"),
    ("SIMS", "sims-process", "video", "audio"),
    ("SIMSv2", "simsv2-process", "video_new", "audio"),
])
def test_sentiment_sets_media_folders_and_valence(tmp_path, name, folder, video_dir, audio_dir):
    root = tmp_path / folder
    root.mkdir()
    msa(root, video_dir, audio_dir)
    result = convert(name, root)
    assert result.counts() == {"dev/msa": 1, "test/msa": 4, "train/msa": 1}
    test = sorted((r for r in result.records if r.split == "test"), key=lambda r: r.id)
    assert [r.target for r in test] == [1.2, -0.6, 0.0, 2.4]
    assert test[0].media["video"] == f"{video_dir}/clip_0.mp4" and test[0].media["audio"] == f"{audio_dir}/clip_0.wav"
    # train/dev clips were not written: reported missing, never an error
    assert {m["id"] for m in result.missing} == {f"{name.lower()}_tr_0", f"{name.lower()}_va_0"}


def test_ovmerd_plus_track2_csv(tmp_path):
    ovmerd(tmp_path)
    result = convert("OV-MERD+", tmp_path)
    assert result.counts() == {"test/ovmer": 2}
    assert result.records[0].target == ["happy", "relaxed"] and result.records[0].text == "hello"
    assert result.missing == []


# ---------------------------------------------------------------- loud failures
def test_label_outside_the_set_names_file_key_and_values(tmp_path):
    meld(tmp_path, indices=(0, 1, 7, 9))
    with pytest.raises(AnnotationError, match=r"label\.npz: 2 label\(s\) outside MELD's label set: "
                                              r".*7 x1 in test_corpus.*9 x1 in test_corpus"):
        convert("MELD", tmp_path)
    np.savez_compressed(tmp_path / "label-6way.npz", train_corpus={"a": {"emo": "happy"}},
                        test1_corpus={"b": {"emo": "joyful"}})
    (tmp_path / "label.npz").unlink()
    with pytest.raises(AnnotationError, match=r"'joyful' x1 in test1_corpus"):
        convert("MER2023", tmp_path)


def test_unknown_corpus_key_and_missing_test_corpus_are_errors(tmp_path):
    np.savez_compressed(tmp_path / "label-6way.npz", train_corpus={"a": {"emo": "happy"}},
                        holdout_corpus={"b": {"emo": "sad"}})
    engchi(tmp_path, ["a", "b"])
    with pytest.raises(AnnotationError, match=r"unknown corpus key\(s\) \['holdout_corpus'\]"):
        convert("MER2023", tmp_path)
    np.savez_compressed(tmp_path / "label-6way.npz", train_corpus={"a": {"emo": "happy"}})
    with pytest.raises(AnnotationError, match=r"test corpus 'test1_corpus' is missing; keys found: \['train_corpus'\]"):
        convert("MER2023", tmp_path)


def test_iemocap_without_session5_is_an_empty_test_split_error(tmp_path):
    np.savez_compressed(tmp_path / "label_4way.npz", whole_corpus={"Ses01F_x": {"emo": 0}})
    engchi(tmp_path, ["Ses01F_x"])
    with pytest.raises(AnnotationError, match=r"test split \(names starting 'Ses05'\) is empty"):
        convert("IEMOCAP", tmp_path)


def test_nan_valence_and_zero_records_are_errors(tmp_path):
    np.savez_compressed(tmp_path / "label.npz", test_corpus={"a": {"val": float("nan")}, "b": {"val": "x"}})
    engchi(tmp_path, ["a", "b"])
    with pytest.raises(AnnotationError, match=r"2 label\(s\) outside MOSI's label set.*expected a finite number"):
        convert("MOSI", tmp_path)
    ovmerd(tmp_path)
    with pytest.raises(AnnotationError, match=r"no records converted for split 'train'"):
        convert("OV-MERD+", tmp_path, split="train")


def test_subtitle_file_missing_names_the_expected_files(tmp_path):
    mer2023(tmp_path)
    (tmp_path / "transcription-engchi-polish.csv").unlink()
    with pytest.raises(AnnotationError, match="transcription-engchi-polish.csv, transcription_merge.csv"):
        convert("MER2023", tmp_path)


# ---------------------------------------------------------------- the benchmark in one command
def test_affectgpt_folder_names_are_found(tmp_path):
    bench_tree(tmp_path)
    folders = mer_unibench_folders(tmp_path)
    assert {k: v.name for k, v in folders.items()} == {
        "MER2023": "mer2023-dataset-process", "MER2024": "mer2024-dataset-process", "MELD": "meld-process",
        "IEMOCAP": "iemocap-process", "MOSI": "cmumosi-process", "MOSEI": "cmumosei-process",
        "SIMS": "sims-process", "SIMSv2": "simsv2-process", "OV-MERD+": "ovmerdplus-process"}
    sets = load_references("mer-unibench", data_root=tmp_path, split="test")
    assert [len(s.records) for s in sets] == [4, 5, 8, 3, 4, 4, 4, 4, 2]


def test_missing_sets_are_listed_and_the_table_keeps_the_paper_order(tmp_path):
    bench_tree(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "cmumosei-process")
    shutil.rmtree(tmp_path / "meld-process")
    records = [r for s in load_references("mer-unibench", data_root=tmp_path, split="test") for r in s.records]
    predictions = {r.id: ("I feel happy and relaxed" if r.task != "msa" else "positive") for r in records}
    result = score_predictions("mer-unibench", predictions, records)
    names = [c["name"] for c in result["columns"]]
    assert names == ["MER2023", "MER2024", "IEMOCAP", "MOSI", "SIMS", "SIMSv2", "OV-MERD+", "Average (7 of 9 sets)"]
    assert result["missing_sets"] == ["MELD", "MOSEI"]
    assert "Not evaluated (no data for these sets; the average covers the others): MELD, MOSEI." in \
        markdown_table(result)


def test_eval_cli_on_the_downloaded_tree_writes_the_table(tmp_path, monkeypatch, capsys):
    """`nanoemox eval --benchmark mer-unibench --data-root DIR` with a predictor that answers from the text."""
    bench_tree(tmp_path / "dataset")
    import shutil

    shutil.rmtree(tmp_path / "dataset" / "simsv2-process")

    class Echo:
        def predict_records(self, records, root, **_):
            for r in records:
                yield r, ("happy" if r.task != "msa" else "positive"), None

    monkeypatch.setattr("nanoemox.eval.harness._load_predictor", lambda model, options: Echo())
    monkeypatch.setattr("nanoemox.eval.harness.model_backbones", lambda model, allow: [])
    monkeypatch.chdir(tmp_path)
    rc = main(["eval", "--benchmark", "mer-unibench", "--data-root", "dataset", "--model", "m",
               "--out", "ev", "--no-plots", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    header = out.splitlines()[0]
    assert header.startswith("| Model | MER2023 | MER2024 | MELD | IEMOCAP | MOSI | MOSEI | SIMS | OV-MERD+ | Average")
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert saved["missing_sets"] == ["SIMSv2"] and saved["n_references"] == 4 + 5 + 8 + 3 + 4 + 4 + 4 + 2


# ---------------------------------------------------------------- data check
def _snapshot(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_data_check_reports_layout_files_counts_labels_and_media(tmp_path, capsys):
    root = tmp_path / "meld-process"
    root.mkdir()
    meld(root)
    (root / "subaudio" / "dia3_utt0.wav").unlink()
    before = _snapshot(tmp_path)
    assert main(["data", "check", "--dataset", "MELD", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "layout: MER-UniBench MELD (label.npz)" in out
    assert "label.npz: keys={'train_corpus': 1, 'val_corpus': 1, 'test_corpus': 8}" in out
    assert "test/mer: 8" in out and "neutral 2" in out
    assert "audio (optional): 9 of 10 found" in out
    assert "faces (optional): 0 of 10 found; looked for e.g. openface_face/dia100_utt0.npy" in out
    assert _snapshot(tmp_path) == before  # nothing written

    assert main(["data", "check", "--dataset", "MELD", "--root", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"dev/mer": 1, "test/mer": 8, "train/mer": 1}
    assert report["labels"]["test/mer"]["values"]["neutral"] == 2
    assert report["media"]["video"] == {"samples": 10, "found": 10, "missing": 0, "required": True,
                                        "expected_like": [f"{d}/dia100_utt0.{e}" for d in ("subvideo", "video")
                                                          for e in ("mp4", "avi", "mkv", "mov")]}


def test_data_check_names_what_is_missing(tmp_path, capsys):
    root = tmp_path / "iemocap-process"
    root.mkdir()
    iemocap(root)
    (root / "label_4way.npz").unlink()
    assert main(["data", "check", "--dataset", "IEMOCAP", "--root", str(root)]) == 2
    out = capsys.readouterr().out
    assert "NOT RECOGNISED" in out and "IEMOCAP label file not found" in out
    assert "expected one of: label_4way.npz, label.npz, label.csv" in out
    assert "the folder holds: subaudio/, subvideo-tgt/, transcription-engchi-polish.csv" in out
    assert not (root / "label_4way.npz").exists()
