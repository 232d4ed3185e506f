"""Converters against the layouts the datasets ship in: MIntRec2.0, M3ED, EMER, CREMA-D.

Each test writes a tiny tree in a release layout (file names and columns as the
releases have them; contents invented) and checks the records, the media found, and
what the converter says it read (`result.layout`, `result.sources`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from nanoemox.data.converters import AnnotationError, convert

from conftest import touch, write


def sources(result) -> dict[str, dict]:
    return {s["file"]: s for s in result.sources}


# ---- MIntRec2.0 ---------------------------------------------------------------------
MINTREC2_HEADER = "Dialogue_id\tUtterance_id\tText\tLabel\tStart_timestamp\tEnd_timestamp\tSource\tspeakername\n"


def mintrec2_rows(*rows: tuple[int, int, str, str]) -> str:
    """TSV text of (dialogue, utterance, text, label) rows in the release's columns."""
    return MINTREC2_HEADER + "".join(
        f"{d}\t{u}\t{text}\t{label}\t00:00:0{u}.000\t00:00:0{u + 1}.000\tS1E{d}\tMonica\n"
        for d, u, text, label in rows)


IN_SCOPE = {
    "train": [(1, 0, "Thanks so much.", "Thank"), (1, 1, "What do you think?", "Asking_for_opinions"),
              (2, 0, "Sorry about that.", "Apologise")],
    "dev": [(3, 0, "Let's go.", "Leave")],
    "test": [(4, 0, "Good morning!", "Greet"), (4, 1, "I doubt it.", "Doubt")],
}
OUT_OF_SCOPE = {
    "train": [(1, 2, "Hmm, the weather.", "UNK"), (2, 1, "Whatever.", "UNK")],
    "dev": [(3, 1, "Okay then.", "UNK")],
    "test": [(4, 2, "Right.", "UNK")],
}


def mintrec2_release(root: Path, out_of_scope: bool = True, clips: bool = True) -> None:
    """in-scope/, out-of-scope/, total/ and raw_data/ clips as MIntRec2.0 ships them."""
    for split in ("train", "dev", "test"):
        write(root, f"in-scope/{split}.tsv", mintrec2_rows(*IN_SCOPE[split]))
        if out_of_scope:
            write(root, f"out-of-scope/{split}.tsv", mintrec2_rows(*OUT_OF_SCOPE[split]))
        # total/ repeats every row: reading it as well would give duplicate ids (an error).
        write(root, f"total/{split}.tsv", mintrec2_rows(*IN_SCOPE[split], *OUT_OF_SCOPE[split]))
    if clips:
        for d, u, _, _ in (r for rows in (*IN_SCOPE.values(), *OUT_OF_SCOPE.values()) for r in rows):
            touch(root, f"raw_data/dia{d}_utt{u}.mp4")


def test_mintrec2_release_reads_in_scope_and_out_of_scope(tmp_path):
    mintrec2_release(tmp_path)
    result = convert("MIntRec2.0", tmp_path)
    assert result.counts() == {"dev/mir": 2, "test/mir": 3, "train/mir": 5}
    recs = {r.id: r for r in result.records}
    unk = sorted(i for i, r in recs.items() if r.target == "UNK")
    assert unk == ["mintrec2_dia1_utt2", "mintrec2_dia2_utt1", "mintrec2_dia3_utt1", "mintrec2_dia4_utt2"]
    assert recs["mintrec2_dia1_utt1"].target == "asking for opinions"
    assert recs["mintrec2_dia4_utt2"].split == "test"
    assert recs["mintrec2_dia1_utt0"].media["video"] == "raw_data/dia1_utt0.mp4"
    assert recs["mintrec2_dia1_utt0"].extra["speakername"] == "Monica"
    assert len(recs["mintrec2_dia2_utt1"].candidates) == 31
    assert result.missing == [] and result.media_found == {"video": 10}
    assert result.layout.startswith("MIntRec2.0 release: in-scope/ + out-of-scope/")
    read = sources(result)
    assert set(read) == {f"{part}/{s}.tsv" for part in ("in-scope", "out-of-scope")
                         for s in ("train", "dev", "test")}
    assert read["in-scope/train.tsv"] == {"file": "in-scope/train.tsv", "split": "train", "rows": 3,
                                          "unk": 0, "part": "in-scope"}
    assert read["out-of-scope/train.tsv"]["rows"] == 2 and read["out-of-scope/train.tsv"]["unk"] == 2


def test_mintrec2_release_one_split(tmp_path):
    mintrec2_release(tmp_path)
    result = convert("mintrec2", tmp_path, split="dev")
    assert result.counts() == {"dev/mir": 2}
    assert [s["file"] for s in result.sources] == ["in-scope/dev.tsv", "out-of-scope/dev.tsv"]


def test_mintrec2_without_out_of_scope_warns(tmp_path, caplog):
    mintrec2_release(tmp_path, out_of_scope=False)
    with caplog.at_level(logging.WARNING):
        result = convert("MIntRec2.0", tmp_path, split="train")
    assert result.counts() == {"train/mir": 3}
    assert all(r.target != "UNK" for r in result.records)
    assert "out-of-scope/train.tsv not found" in caplog.text and "UNK" in caplog.text
    assert "out-of-scope/ absent" in result.layout
    assert "UNK" in sources(result)["in-scope/train.tsv"]["warning"]


def test_mintrec2_total_fallback_and_video_alternative(tmp_path):
    for split in ("train", "test"):
        write(tmp_path, f"total/{split}.tsv", mintrec2_rows(*IN_SCOPE[split], *OUT_OF_SCOPE[split]))
    touch(tmp_path, "video/dia1_utt0.mp4", "raw_video/dia1_utt2.mp4")
    result = convert("MIntRec2.0", tmp_path)
    assert result.counts() == {"test/mir": 3, "train/mir": 5}
    recs = {r.id: r for r in result.records}
    assert recs["mintrec2_dia1_utt2"].target == "UNK"
    assert recs["mintrec2_dia1_utt0"].media["video"] == "video/dia1_utt0.mp4"
    assert recs["mintrec2_dia1_utt2"].media["video"] == "raw_video/dia1_utt2.mp4"
    # A clip found nowhere is expected under the release's raw_data/ name.
    assert {"id": "mintrec2_dia2_utt0", "path": "raw_data/dia2_utt0.mp4", "kind": "video"} in result.missing
    assert "total/" in result.layout
    assert sources(result)["total/train.tsv"]["unk"] == 2
    assert set(sources(result)) == {"total/train.tsv", "total/test.tsv"}


def test_mintrec2_release_bad_label_names_out_of_scope_file(tmp_path):
    mintrec2_release(tmp_path, clips=False)
    write(tmp_path, "out-of-scope/dev.tsv", mintrec2_rows((3, 1, "Okay.", "UNK"), (3, 2, "Eh.", "Banana")))
    with pytest.raises(AnnotationError, match=r"out-of-scope/dev\.tsv:3: unknown intent label 'Banana'"):
        convert("MIntRec2.0", tmp_path)


def test_mintrec2_release_missing_split_names_folder(tmp_path):
    write(tmp_path, "in-scope/train.tsv", mintrec2_rows(*IN_SCOPE["train"]))
    write(tmp_path, "out-of-scope/train.tsv", mintrec2_rows(*OUT_OF_SCOPE["train"]))
    with pytest.raises(AnnotationError, match=r"in-scope/test\.tsv: no MIntRec2\.0 in-scope split file"):
        convert("MIntRec2.0", tmp_path, split="test")


# ---- M3ED ---------------------------------------------------------------------------
def m3ed_annotation(**emotions: str) -> str:
    """annotation.json: series -> dialog -> Dialog -> utterance, speakers alternating A/B."""
    dialog = {utt: {"StartTime": "00:00:01.000", "EndTime": "00:00:02.000", "Text": "你好",
                    "Speaker": "AB"[i % 2], "EmoAnnotation": {"final_main_emo": emo}}
              for i, (utt, emo) in enumerate(emotions.items())}
    return json.dumps({"anjia": {"anjia_1": {"Dialog": dialog, "SpeakerInfo": {"A": {}, "B": {}}}}},
                      ensure_ascii=False)


def test_m3ed_speaker_prefixed_clips(tmp_path):
    write(tmp_path, "annotation.json", m3ed_annotation(anjia_1_1="Happy", anjia_1_2="Neutral"))
    write(tmp_path, "splitInfo/movie_list_train.txt", "anjia\n")
    write(tmp_path, "splitInfo/movie_list_val.txt", "")
    write(tmp_path, "splitInfo/movie_list_test.txt", "")
    touch(tmp_path, "audio/A_anjia_1_1.wav", "audio/B_anjia_1_2.wav", "video/A_anjia_1_1.mp4")
    result = convert("M3ED", tmp_path)
    recs = {r.id: r for r in result.records}
    assert result.missing == []
    assert recs["m3ed_anjia_1_1"].media == {"video": "video/A_anjia_1_1.mp4",
                                            "audio": "audio/A_anjia_1_1.wav", "faces": None}
    assert recs["m3ed_anjia_1_2"].media["audio"] == "audio/B_anjia_1_2.wav"
    assert recs["m3ed_anjia_1_2"].media["video"] is None
    assert (recs["m3ed_anjia_1_2"].extra["speaker"], recs["m3ed_anjia_1_2"].target) == ("B", "neutral")
    assert result.counts() == {"train/mer": 2}
    assert "audio/{speaker}_{utt}.wav" in result.layout
    read = sources(result)
    assert read["annotation.json"]["utterances"] == 2
    assert read["splitInfo/movie_list_train.txt"] == {"file": "splitInfo/movie_list_train.txt",
                                                      "split": "train", "series": 1}


def test_m3ed_unknown_emotion_raises(tmp_path):
    write(tmp_path, "annotation.json", m3ed_annotation(anjia_1_1="Happy", anjia_1_2="Bored"))
    with pytest.raises(AnnotationError, match=r"annotation\.json: utterance 'anjia_1_2' has unknown emotion"):
        convert("M3ED", tmp_path)


# ---- EMER ---------------------------------------------------------------------------
EMER_V2 = ("name,chinese,english\n"
           "sample_00000001,她在微笑。,\"She smiles, so she is happy.\"\n"
           "sample_00000002,他皱眉。,He frowns and his voice is low: sad.\n"
           "sample_00000003,他提高了声音。,He raises his voice; anger.\n")


def test_emer_current_release(tmp_path):
    write(tmp_path, "final-EMER-reason.csv", EMER_V2)
    touch(tmp_path, "video/sample_00000001.mp4", "video/sample_00000002.avi", "video/sample_00000003.mp4")
    result = convert("EMER", tmp_path)
    recs = {r.id: r for r in result.records}
    assert len(recs) == 3 and result.missing == []
    first = recs["emer_sample_00000001"]
    assert (first.split, first.task, first.target, first.text) == (
        "test", "eri", "She smiles, so she is happy.", None)
    assert first.extra["reason_chinese"] == "她在微笑。" and "emotions" not in first.extra
    assert recs["emer_sample_00000002"].media["video"] == "video/sample_00000002.avi"
    assert result.layout.startswith("EMER current release: final-EMER-reason.csv")
    assert result.sources == [{"file": "final-EMER-reason.csv", "split": "test", "rows": 3,
                               "columns": ["name", "chinese", "english"]}]


def test_emer_current_release_wins_over_first(tmp_path):
    write(tmp_path, "final-EMER-reason.csv", EMER_V2)
    write(tmp_path, "gt-eng.csv", "names,emotions,subtitles,reasons\nsample_00000001,happy,hi,Old reason.\n")
    write(tmp_path, "subtitle_chieng.csv", "name,chinese,english\nsample_00000001,你好,hello\n")
    result = convert("EMER", tmp_path)
    recs = {r.id: r for r in result.records}
    assert len(recs) == 3
    assert recs["emer_sample_00000001"].target == "She smiles, so she is happy."
    assert recs["emer_sample_00000001"].text == "hello"  # from the subtitle CSV beside it
    read = sources(result)
    assert read["final-EMER-reason.csv"]["ignored"] == ["gt-eng.csv"]
    assert "gt-eng.csv" not in read and read["subtitle_chieng.csv"]["rows"] == 1


def test_emer_current_release_empty_reason_is_an_error(tmp_path):
    write(tmp_path, "final-EMER-reason.csv", EMER_V2 + "sample_00000004,他笑了。,\n")
    with pytest.raises(AnnotationError,
                       match=r"final-EMER-reason\.csv:5: sample 'sample_00000004' has an empty english reason"):
        convert("EMER", tmp_path)


def test_emer_first_release_still_read(tmp_path):
    write(tmp_path, "gt-eng.csv", "names,emotions,subtitles,reasons\n"
                                  "sample_00000001,\"happy, calm\",hello,Because she smiles.\n")
    result = convert("EMER", tmp_path)
    rec = result.records[0]
    assert (rec.target, rec.text, rec.extra["emotions"]) == ("Because she smiles.", "hello", ["happy", "calm"])
    assert result.layout.startswith("EMER first release: gt-eng.csv")
    assert result.sources[0]["file"] == "gt-eng.csv" and result.sources[0]["rows"] == 1


# ---- CREMA-D ------------------------------------------------------------------------
def test_cremad_release_flash_video(tmp_path):
    names = ("1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1091_WSI_SAD_LO")
    touch(tmp_path, *(f"AudioWAV/{n}.wav" for n in names), *(f"VideoFlash/{n}.flv" for n in names))
    result = convert("CREMA-D", tmp_path)
    recs = {r.id: r for r in result.records}
    assert result.missing == [] and result.media_found == {"video": 3, "audio": 3}
    assert recs["cremad_1091_WSI_SAD_LO"].media == {"video": "VideoFlash/1091_WSI_SAD_LO.flv",
                                                    "audio": "AudioWAV/1091_WSI_SAD_LO.wav", "faces": None}
    assert not any(str(v).endswith(".mp4") for r in recs.values() for v in r.media.values())
    assert "VideoFlash/*.flv" in result.layout
    assert result.sources == [{"file": "AudioWAV", "files": 3, "matched": 3},
                              {"file": "VideoFlash", "files": 3}]


def test_cremad_converted_mp4_is_an_alternative(tmp_path):
    touch(tmp_path, "AudioWAV/1001_DFA_ANG_XX.wav", "VideoMP4/1001_DFA_ANG_XX.mp4")
    result = convert("CREMA-D", tmp_path)
    assert result.records[0].media["video"] == "VideoMP4/1001_DFA_ANG_XX.mp4"


def test_cremad_no_well_named_file_names_them(tmp_path, caplog):
    touch(tmp_path, "AudioWAV/readme.wav", "AudioWAV/1001-DFA-ANG-XX.wav")
    with caplog.at_level(logging.WARNING), pytest.raises(AnnotationError, match="no records converted") as err:
        convert("CREMA-D", tmp_path)
    assert "readme.wav" in caplog.text and "1001-DFA-ANG-XX.wav" in caplog.text
    assert "AudioWAV (files=2, matched=0, skipped=2" in str(err.value)


# ---- layout and sources for the other converters of these families -------------------
def test_every_family_converter_says_what_it_read(tmp_path):
    trees = {
        "MIntRec": ({"train.tsv": "season\tepisode\tclip\ttext\tlabel\nS05\tE16\t329\tThanks\tThank\n"},
                    ["train.tsv"]),
        "FERV39K": ({"4_setups/All_scenes/train_All.csv": "Action/Close/0001 3\n",
                     "4_setups/All_scenes/test_All.csv": "Party/Far/0009 0\n"},
                    ["4_setups/All_scenes/train_All.csv", "4_setups/All_scenes/test_All.csv"]),
        "CAER": ({"train/Anger/0001.avi": "", "validation/Happy/0002.avi": ""}, ["train", "validation"]),
        "MER-Caption+": ({"track2_train_mercaptionplus.csv": "name,openset\nv1,happy\n",
                          "track3_train_mercaptionplus.csv": "name,reason\nv1,She smiles.\n"},
                         ["track2_train_mercaptionplus.csv", "track3_train_mercaptionplus.csv"]),
        "MERR-Fine": ({"MERR_fine_grained.json": json.dumps({"v1": {"smp_reason_caption": "A smile."}})},
                      ["MERR_fine_grained.json"]),
    }
    for name, (files, read) in trees.items():
        root = tmp_path / name.replace("+", "p")
        for rel, text in files.items():
            write(root, rel, text)
        result = convert(name, root)
        assert result.layout, name
        assert [s["file"] for s in result.sources] == read, name
        assert all(s.get("rows", s.get("files")) == 1 for s in result.sources), (name, result.sources)
