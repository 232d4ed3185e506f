"""Dataset converters: tiny fake trees in each native layout -> manifest records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from nanoemox.cli import cmd_data
from nanoemox.data.converters import CONVERTERS, AnnotationError, convert, resolve_name
from nanoemox.data.manifest import load_manifest, validate

from conftest import touch, write


def by_id(result):
    return {r.id: r for r in result.records}


def assert_valid(result):
    for record in result.records:
        assert validate(json.loads(record.to_json())) is None, record.id
        for rel in record.media.values():
            assert rel is None or not Path(rel).is_absolute()


def test_every_dataset_is_registered_and_names_resolve():
    expected = {"FERV39K", "CAER", "CREMA-D", "M3ED", "MER-Caption+", "MERR-Fine", "MIntRec",
                "MIntRec2.0", "AvaMERG", "MER2023", "MER2024", "MELD", "IEMOCAP", "MOSI", "MOSEI",
                "SIMS", "SIMSv2", "OV-MERD+", "EMER"}
    assert set(CONVERTERS) == expected
    assert resolve_name("ovmerd+") == resolve_name("OV-MERD+") == "OV-MERD+"
    assert resolve_name("mintrec2") == "MIntRec2.0"
    assert resolve_name("mer2023") == "MER2023"
    with pytest.raises(ValueError, match="unknown dataset"):
        resolve_name("imagenet")


def test_mer2023_npz_layout_and_missing_report(tmp_path):
    np.savez(tmp_path / "label.npz",
             train_corpus={"s1": {"emo": "happy", "val": 1.0}},
             test1_corpus={"t1": {"emo": "Worried", "val": -1.0}, "t2": {"emo": "sad", "val": -2.0}},
             test2_corpus={"u1": {"emo": "sad", "val": 0.0}})
    write(tmp_path, "subtitle_eng.csv", 'name,english\ns1,"Hello, there"\nt1,I am worried\nt2,\n')
    touch(tmp_path, "video/s1.mp4", "video/t1.avi", "audio/t1.wav")
    result = convert("mer2023", tmp_path)
    recs = by_id(result)
    assert set(recs) == {"mer2023_s1", "mer2023_t1", "mer2023_t2"}  # test2 is not the benchmark
    t1 = recs["mer2023_t1"]
    assert (t1.split, t1.task, t1.target, t1.text) == ("test", "mer", "worried", "I am worried")
    assert t1.media == {"video": "video/t1.avi", "audio": "audio/t1.wav", "faces": None}
    assert recs["mer2023_s1"].split == "train" and recs["mer2023_s1"].text == "Hello, there"
    assert "worried" in t1.candidates
    assert result.missing == [{"id": "mer2023_t2", "path": "video/t2.mp4", "kind": "video"}]
    assert [r.id for r in convert("MER2023", tmp_path, split="test").records] == ["mer2023_t1", "mer2023_t2"]
    assert_valid(result)
    out, report = tmp_path / "out" / "m.jsonl", tmp_path / "out" / "m.report.json"
    assert result.write(out, report_path=report) == 3
    assert [r.id for r in load_manifest(out)] == [r.id for r in result.records]
    rep = json.loads(report.read_text())
    assert rep["missing"] == result.missing and rep["records"] == 3
    assert [r.id for r in result.without_missing().records] == ["mer2023_s1", "mer2023_t1"]


def test_npz_with_a_differently_named_test_corpus_is_refused(tmp_path):
    # Before, any lone "test*" corpus was taken as the test split; an unknown key now
    # stops the conversion, naming the keys found and the ones the set ships.
    np.savez(tmp_path / "label.npz", test3_corpus={"a": {"emo": 3, "val": -1.0}})
    write(tmp_path, "subtitle.csv", "name,english\na,no\n")
    with pytest.raises(AnnotationError, match=r"unknown corpus key\(s\) \['test3_corpus'\].*holds whole_corpus"):
        convert("IEMOCAP", tmp_path)


def test_msa_and_ovmer_csv_layouts(tmp_path):
    sims = tmp_path / "sims"
    write(sims, "label.csv", "name,val\na,0.8\nb,-0.4\nc,0\n")
    write(sims, "subtitle.csv", "name,english,chinese\na,good,好\nb,,不好\nc,ok,\n")
    touch(sims, "video/a.mp4", "video/b.mp4", "video/c.mp4")
    recs = by_id(convert("SIMS", sims))
    assert recs["sims_a"].target == 0.8 and recs["sims_b"].target == -0.4 and recs["sims_c"].target == 0.0
    assert recs["sims_b"].text == "不好" and recs["sims_a"].task == "msa"
    assert all(r.split == "test" for r in recs.values())
    ov = tmp_path / "ov"
    write(ov, "label.csv", "name,openset\nx,\"['happy', 'Excited']\"\ny,sad; lonely\n")
    write(ov, "subtitle.csv", "name,english\nx,yay\ny,oh\n")
    result = convert("ovmerd+", ov)
    recs = by_id(result)
    assert recs["ovmerd_x"].target == ["happy", "excited"] and recs["ovmerd_y"].target == ["sad", "lonely"]
    assert {m["id"] for m in result.missing} == {"ovmerd_x", "ovmerd_y"}
    assert_valid(result)


def test_bad_valence_names_file_and_line(tmp_path):
    write(tmp_path, "label.csv", "name,val\na,0.5\nb,oops\n")
    write(tmp_path, "subtitle.csv", "name,english\n")
    with pytest.raises(AnnotationError, match=r"label\.csv: 1 label\(s\) outside MOSI's label set: 'oops' x1 in line 3"):
        convert("MOSI", tmp_path)
    (tmp_path / "label.csv").unlink()
    with pytest.raises(AnnotationError, match="label file not found"):
        convert("MOSI", tmp_path)


def test_mercaption_merr_and_emer(tmp_path):
    write(tmp_path, "track2_train_mercaptionplus.csv", "name,openset\nv1,\"happy, relaxed\"\nv2,\n")
    write(tmp_path, "track3_train_mercaptionplus.csv", "name,reason\nv1,She smiles broadly.\n")
    write(tmp_path, "subtitle_chieng.csv", "name,chinese,english\nv1,你好,hello\n")
    touch(tmp_path, "video/v1.mp4")
    recs = by_id(convert("MER-Caption+", tmp_path))
    assert set(recs) == {"mercaptionplus_v1_ovmer", "mercaptionplus_v1_eri"}
    assert recs["mercaptionplus_v1_ovmer"].target == ["happy", "relaxed"]
    assert recs["mercaptionplus_v1_eri"].target == "She smiles broadly."
    assert recs["mercaptionplus_v1_eri"].text == "hello"
    with pytest.raises(AnnotationError, match="MER-Caption\\+: no records converted for split 'test'"):
        convert("MER-Caption+", tmp_path, split="test")  # training only: an empty split is an error

    write(tmp_path, "MERR_fine_grained.json", json.dumps({
        "v1": {"AU_list": ["AU12"], "pseu_emotion": "happy", "text": "hi", "peak_index": 3,
               "smp_reason_caption": "A smile and a bright tone."}}))
    merr = convert("merr-fine", tmp_path)
    rec = merr.records[0]
    assert (rec.id, rec.task, rec.target, rec.text) == ("merrfine_v1", "eri", "A smile and a bright tone.", "hi")
    assert rec.extra["pseu_emotion"] == "happy" and merr.missing == []

    write(tmp_path, "emer.csv", "names,emotions,subtitles,reasons\nv1,\"happy, calm\",hello,Because she smiles.\n")
    emer = convert("EMER", tmp_path).records[0]
    assert (emer.split, emer.task, emer.target, emer.extra["emotions"]) == (
        "test", "eri", "Because she smiles.", ["happy", "calm"])


def test_merr_malformed_json_names_line(tmp_path):
    write(tmp_path, "MERR_fine_grained.json", '{\n  "v1": {"text": "x",}\n}\n')
    with pytest.raises(AnnotationError, match=r"MERR_fine_grained\.json:2: invalid JSON"):
        convert("MERR-Fine", tmp_path)


def test_mintrec_layout(tmp_path):
    write(tmp_path, "train.tsv", "season\tepisode\tclip\ttext\tlabel\nS05\tE16\t329\tThanks a lot!\tThank\n"
                                 "4\t2\t7\tCan you help me?\tAsk for help\n")
    write(tmp_path, "test.tsv", "season\tepisode\tclip\ttext\tlabel\nS01\tE01\t1\tHi\tGreet\n")
    touch(tmp_path, "raw_data/S05/E16/329.mp4", "raw_data/S04/E02/7.mp4")
    result = convert("MIntRec", tmp_path)
    recs = by_id(result)
    assert recs["mintrec_S05_E16_329"].media["video"] == "raw_data/S05/E16/329.mp4"
    assert recs["mintrec_S05_E16_329"].target == "thank"
    assert recs["mintrec_S04_E02_7"].target == "ask for help"
    assert recs["mintrec_S01_E01_1"].split == "test"
    assert len(recs["mintrec_S01_E01_1"].candidates) == 20
    assert result.missing == [{"id": "mintrec_S01_E01_1", "path": "raw_data/S01/E01/1.mp4", "kind": "video"}]
    write(tmp_path, "dev.tsv", "season\tepisode\tclip\ttext\tlabel\nS01\tE01\t2\tHm\tBanana\n")
    with pytest.raises(AnnotationError, match=r"dev\.tsv:2: unknown intent label 'Banana'"):
        convert("MIntRec", tmp_path)


def test_mintrec2_layout(tmp_path):
    header = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeakername\n"
    write(tmp_path, "train.tsv", header + "12\t3\tWhat do you think?\tAsking for opinions\t1\t2\tS1\tAnn\n"
                                          "12\t4\tWhatever.\tUNK\t2\t3\tS1\tBob\n")
    touch(tmp_path, "video/dia12_utt3.mp4", "video/dia12_utt4.mp4")
    result = convert("mintrec2", tmp_path, split="train")
    recs = by_id(result)
    assert recs["mintrec2_dia12_utt3"].target == "asking for opinions"
    assert recs["mintrec2_dia12_utt4"].target == "UNK"
    assert recs["mintrec2_dia12_utt3"].extra["speakername"] == "Ann"
    assert len(recs["mintrec2_dia12_utt3"].candidates) == 31 and result.missing == []
    with pytest.raises(AnnotationError, match="no MIntRec2.0 split file"):
        convert("mintrec2", tmp_path, split="test")


def _avamerg_conversation(conv_id: str, speaker: str, n_turns: int) -> dict:
    turns, history = [], []
    for k in range(n_turns):
        history = history + [{"role": "speaker", "utterance": f"speaker says {k}"}]
        turns.append({
            "turn_id": str(k), "context": "work",
            "dialogue_history": list(history),
            "response": f"listener reply {k}",
            "chain_of_empathy": {"event_scenario": f"scene {k}", "speaker_emotion": "Worried",
                                 "emotion_cause": "deadline", "goal_to_response": "reassure"},
        })
        history = history + [{"role": "listener", "utterance": f"listener reply {k}"}]
    return {"conversation_id": conv_id, "topic": "job", "speaker_profile": {"ID": speaker},
            "listener_profile": {"ID": "9"}, "turns": turns}


def test_avamerg_turn_by_turn(tmp_path):
    write(tmp_path, "train.json", json.dumps([_avamerg_conversation("00042", "60", 2)]))
    write(tmp_path, "test.json", json.dumps([_avamerg_conversation("00043", "61", 3)]))
    touch(tmp_path, "video/dia00042utt0_60.mp4", "audio/dia00042utt0_60.wav", "video/dia00042utt2_60.mp4")
    result = convert("AvaMERG", tmp_path)
    recs = by_id(result)
    erg1 = recs["avamerg_dia00042utt2_60_erg"]
    assert erg1.task == "erg" and erg1.split == "train"
    assert erg1.history == [{"role": "speaker", "text": "speaker says 0"},
                            {"role": "listener", "text": "listener reply 0"}]
    assert erg1.text == "speaker says 1"
    assert erg1.target == {"event_scenario": "scene 1", "speaker_emotion": "anxious", "emotion_cause": "deadline",
                           "goal_to_response": "reassure", "reply": "listener reply 1"}
    assert erg1.media == {"video": "video/dia00042utt2_60.mp4", "audio": "audio/dia00042utt2_60.wav",
                          "faces": None}
    assert recs["avamerg_dia00042utt0_60_erg"].history == []
    mer = recs["avamerg_dia00042utt0_60_mer"]
    assert (mer.task, mer.target) == ("mer", "anxious")  # folded onto the fine label set
    assert mer.extra["speaker_emotion_raw"] == "Worried"
    test_ids = sorted(r.id for r in result.records if r.split == "test")
    assert test_ids == ["avamerg_dia00043utt4_61_erg", "avamerg_dia00043utt4_61_mer"]  # last turn only
    missing = {(m["id"], m["kind"]) for m in result.missing}
    assert ("avamerg_dia00042utt2_60", "audio") in missing and ("avamerg_dia00043utt4_61", "video") in missing
    assert_valid(result)


def test_avamerg_clip_named_after_the_turn_id_is_a_variant(tmp_path):
    write(tmp_path, "test.json", json.dumps([_avamerg_conversation("00043", "61", 3)]))
    touch(tmp_path, "video/dia00043utt2_61.mp4", "audio/dia00043utt2_61.wav")  # turn 2 (utterance 4)
    result = convert("AvaMERG", tmp_path)
    assert by_id(result)["avamerg_dia00043utt4_61_erg"].media["video"] == "video/dia00043utt2_61.mp4"
    assert result.missing == []


def test_avamerg_malformed_turn(tmp_path):
    conv = _avamerg_conversation("1", "2", 1)
    del conv["turns"][0]["chain_of_empathy"]["emotion_cause"]
    write(tmp_path, "train.json", json.dumps([conv]))
    with pytest.raises(AnnotationError, match=r"train\.json \(conversation #0\).*emotion_cause"):
        convert("avamerg", tmp_path)


def test_ferv39k_caer_cremad_m3ed(tmp_path):
    ferv = tmp_path / "ferv"
    write(ferv, "4_setups/All_scenes/train_All.csv", "Action/Close/0001 3\nAction/Close/0002 Sad\n")
    write(ferv, "4_setups/All_scenes/test_All.csv", "Party/Far/0009 0\n")
    touch(ferv, "2_ClipsforFaceCrop/Action/Close/0001/", "2_ClipsforFaceCrop/Party/Far/0009/")
    result = convert("FERV39K", ferv)
    recs = by_id(result)
    assert recs["ferv39k_Action_Close_0001"].target == "happy"
    assert recs["ferv39k_Action_Close_0002"].target == "sad"
    assert recs["ferv39k_Party_Far_0009"].split == "test"
    assert recs["ferv39k_Party_Far_0009"].media["faces"] == "2_ClipsforFaceCrop/Party/Far/0009/"
    assert [m["id"] for m in result.missing] == ["ferv39k_Action_Close_0002"]

    caer = tmp_path / "caer"
    touch(caer, "train/Anger/0001.avi", "validation/Happy/0002.avi", "test/Surprise/0003.avi")
    recs = by_id(convert("caer", caer))
    assert {(r.split, r.target) for r in recs.values()} == {("train", "anger"), ("dev", "happy"),
                                                           ("test", "surprise")}
    assert recs["caer_dev_happy_0002"].media["video"] == "validation/Happy/0002.avi"
    touch(caer, "train/Bored/0004.avi")
    with pytest.raises(AnnotationError, match="unknown emotion folder 'Bored'"):
        convert("CAER", caer)

    crema = tmp_path / "crema"
    touch(crema, "AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_HAP_HI.wav", "AudioWAV/readme.wav",
          "VideoFlash/1001_DFA_ANG_XX.flv")
    recs = by_id(convert("crema-d", crema))
    assert set(recs) == {"cremad_1001_DFA_ANG_XX", "cremad_1002_IEO_HAP_HI"}
    ang = recs["cremad_1001_DFA_ANG_XX"]
    assert (ang.target, ang.text, ang.media["video"]) == ("anger", "Don't forget a jacket.",
                                                          "VideoFlash/1001_DFA_ANG_XX.flv")
    assert recs["cremad_1002_IEO_HAP_HI"].media == {"video": None, "audio": "AudioWAV/1002_IEO_HAP_HI.wav",
                                                    "faces": None}

    m3ed = tmp_path / "m3ed"
    write(m3ed, "annotation.json", json.dumps({"anjia": {"anjia_1": {"Dialog": {
        "anjia_1_1": {"Speaker": "A", "Text": "你好", "EmoAnnotation": {"final_main_emo": "Happy"}},
        "anjia_1_2": {"Speaker": "B", "Text": "嗯", "EmoAnnotation": {"final_main_emo": "Neutral"}}}}}}))
    write(m3ed, "splitInfo/movie_list_test.txt", "anjia\n")
    touch(m3ed, "audio/anjia_1_1.wav")
    result = convert("M3ED", m3ed)
    recs = by_id(result)
    assert recs["m3ed_anjia_1_1"].target == "happy" and recs["m3ed_anjia_1_1"].split == "test"
    assert recs["m3ed_anjia_1_1"].media["audio"] == "audio/anjia_1_1.wav"
    # The bare {utterance}.wav name is still found; a missing clip is reported under the
    # release's {speaker}_{utterance}.wav name.
    assert result.missing == [{"id": "m3ed_anjia_1_2", "path": "audio/B_anjia_1_2.wav", "kind": "audio"}]


def cli_main(argv: list[str]) -> int:
    """Run `nanoemox <argv>` with only the data command registered (others may be mid-edit)."""
    parser = argparse.ArgumentParser(prog="nanoemox")
    cmd_data.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_convert_writes_manifest_and_report(tmp_path, capsys):
    write(tmp_path, "train.tsv", "season\tepisode\tclip\ttext\tlabel\nS05\tE16\t329\tThanks\tThank\n"
                                 "S05\tE16\t330\tSorry\tApologise\n")
    touch(tmp_path, "raw_data/S05/E16/329.mp4")
    out = tmp_path / "m" / "mintrec.jsonl"
    assert cli_main(["data", "convert", "--dataset", "mintrec", "--root", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 2 records" in printed and "missing media: 1 file(s)" in printed
    report = json.loads((tmp_path / "m" / "mintrec.report.json").read_text())
    assert report["missing"][0]["id"] == "mintrec_S05_E16_330"
    assert len(load_manifest(out)) == 2
    assert cli_main(["data", "convert", "--dataset", "mintrec", "--root", str(tmp_path), "--out", str(out),
                     "--drop-missing"]) == 0
    assert [r.id for r in load_manifest(out)] == ["mintrec_S05_E16_329"]
    assert cli_main(["data", "convert", "--dataset", "mintrec", "--root", str(tmp_path / "nope"),
                     "--out", str(out)]) == 2
