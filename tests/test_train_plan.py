"""`nanoemox train CONFIG --dry-run`: pools, mixture, samples seen and epochs, without a model."""

from __future__ import annotations

import shutil
from pathlib import Path

from nanoemox.cli import main
from nanoemox.data.manifest import Record, write_manifest

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = {  # manifest name in configs/p2e_paper.yaml -> (dataset, tasks, records per task)
    "ferv39k": ("FERV39K", ["mer"], 40), "caer": ("CAER", ["mer"], 13), "crema-d": ("CREMA-D", ["mer"], 7),
    "m3ed": ("M3ED", ["mer"], 24), "mintrec": ("MIntRec", ["mir"], 2), "mintrec2": ("MIntRec2.0", ["mir"], 5),
    "mer-caption-plus": ("MER-Caption+", ["ovmer", "eri"], 31), "merr-fine": ("MERR-Fine", ["eri"], 4),
    "avamerg": ("AvaMERG", ["erg", "mer"], 57),
}
TARGETS = {"mer": "happy", "mir": "thank", "ovmer": ["happy"], "eri": "she smiles",
           "erg": {"event_scenario": "a", "speaker_emotion": "sad", "emotion_cause": "b",
                   "goal_to_response": "c", "reply": "d"}}


def paper_tree(tmp_path: Path, media: bool = True) -> Path:
    shutil.copy(ROOT / "configs" / "p2e_paper.yaml", tmp_path / "p2e_paper.yaml")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "facexformer.pt").write_bytes(b"x")
    for name, (dataset, tasks, n) in MANIFESTS.items():
        records = []
        for task in tasks:
            for i in range(n):
                video = f"{dataset}/{task}_{i}.mp4"
                if media:
                    (tmp_path / "data" / video).parent.mkdir(parents=True, exist_ok=True)
                    (tmp_path / "data" / video).write_bytes(b"x")
                records.append(Record(f"{name}_{task}_{i}", dataset, "train", task,
                                      {"video": video, "audio": None, "faces": None}, target=TARGETS[task]))
        write_manifest(tmp_path / "data" / "manifests" / f"{name}.jsonl", records)
    return tmp_path / "p2e_paper.yaml"


def test_dry_run_of_the_paper_config_shows_phase3_pools_from_all_mer_sets(tmp_path, capsys, monkeypatch):
    config = paper_tree(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "p2e_paper.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written
    phase3 = out[out.index("phase p3_instruct"):]
    mer_pool = next(line for line in phase3.splitlines() if line.strip().startswith("mer pool:"))
    for dataset, n in (("AvaMERG", 57), ("CAER", 13), ("CREMA-D", 7), ("FERV39K", 40), ("M3ED", 24)):
        assert f"{dataset} {n}" in mer_pool
    # 300,000 steps x 12 samples; MER drawn with p = 18/100; its pool 141 records.
    assert "300000 steps x 12 samples = 3600000 samples seen" in phase3
    mer = next(line for line in phase3.splitlines() if line.strip().startswith("mer ") and "p=" in line)
    assert "p=0.180" in mer and "pool      141" in mer and "samples    648000" in mer
    assert "epochs 4595.74" in mer
    assert "FERV39K: video_found 40" in out and config.is_file()


def test_dry_run_lists_every_problem(tmp_path, capsys):
    config = paper_tree(tmp_path, media=False)
    (tmp_path / "data" / "manifests" / "merr-fine.jsonl").write_text('{"id": "x"\n')
    text = config.read_text().replace("datasets: [MIntRec, MIntRec2.0]", "datasets: [MIntRec, MIntRec3]")
    config.write_text(text)
    (tmp_path / "checkpoints" / "facexformer.pt").unlink()
    assert main(["train", str(config), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "merr-fine.jsonl" in err and "names dataset 'MIntRec3'" in err
    assert "face_checkpoint" in err and "media file(s) the phases read are missing" in err
    assert "problem(s):" in err


def test_train_without_out_needs_dry_run(tmp_path, capsys):
    config = paper_tree(tmp_path)
    assert main(["train", str(config)]) == 2
    assert "--out is required" in capsys.readouterr().err
