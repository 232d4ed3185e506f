"""Scoring raw generations per benchmark, the predictions file and `nanoemox score`."""

from __future__ import annotations

import json

import pytest

from nanoemox.cli import main
from nanoemox.data.manifest import Record, write_manifest
from nanoemox.eval.judge import EmerJudge
from nanoemox.eval.llm import LLMClient, LLMConfig
from nanoemox.eval.scoring import (
    PredictionsError,
    load_predictions,
    markdown_table,
    score_predictions,
)
from nanoemox.eval.testing import FakeChatServer


def rec(id_, dataset, task, target, candidates=None) -> Record:
    return Record(id=id_, dataset=dataset, split="test", task=task, target=target, candidates=candidates)


def _col(result, name):
    return next(c for c in result["columns"] if c["name"] == name)


# ---------------------------------------------------------------- predictions file
def test_load_predictions_reports_every_bad_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"id": "a", "prediction": "happy"}\n\n'
        '{"id": "b"}\n'
        "not json\n"
        '{"id": "a", "prediction": "sad"}\n'
        '{"id": "c", "prediction": "x", "task": "dance"}\n'
    )
    with pytest.raises(PredictionsError) as err:
        load_predictions(path)
    message = str(err.value)
    assert "4 bad line(s)" in message
    for needle in ("line 3", "line 4", "line 5: duplicate", "line 6"):
        assert needle in message
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": 7, "prediction": null}\n{"id": "x", "prediction": "ok", "task": "mer"}\n'
                    '{"id": "y", "prediction": "sad", "error": "clip.mp4: truncated"}\n')
    # Failed samples are missing (scored wrong), not empty answers.
    assert load_predictions(good) == {"x": "ok"}


# ---------------------------------------------------------------- MER-UniBench
def test_mer_unibench_columns_missing_and_average():
    refs = [
        rec("m1", "MER2023", "mer", "happy"),
        rec("m2", "MER2023", "mer", "sad"),        # missing prediction -> miss
        rec("m3", "MER2023", "mer", "neutral"),    # maps to no cluster -> skipped
        rec("s1", "CMU-MOSI", "msa", 1.5),
        rec("s2", "CMU-MOSI", "msa", -0.4),
        rec("s3", "CMU-MOSI", "msa", 0.0),         # valence 0 -> dropped
        rec("s4", "CMU-MOSI", "msa", 2.0),         # missing -> wrong sign
    ]
    preds = {"m1": "She is clearly joyful.", "m3": "calm", "s1": "positive",
             "s2": "The sentiment is negative.", "s3": "positive", "extra": "ignored"}
    result = score_predictions("mer-unibench", preds, refs)
    # MER2023: m1 hits on all wheels, m2 misses, m3 skipped -> 50.00.
    mer = _col(result, "MER2023")
    assert mer["value"] == pytest.approx(50.0) and mer["paper"] == 79.09
    assert mer["details"]["counted"] == [2] * 5 and mer["missing"] == 1
    # MOSI kept: s1 (+, pred +), s2 (-, pred -), s4 (+, missing -> pred -).
    # y=[T,F,T], yhat=[T,F,F]: class T P=1 R=1/2 F1=2/3 (support 2); class F P=1/2 R=1
    # F1=2/3 (support 1) -> WAF 66.67.
    mosi = _col(result, "MOSI")
    assert mosi["value"] == pytest.approx(200 / 3)
    assert mosi["details"]["accuracy"] == pytest.approx(2 / 3)
    # Average over the sets present, flagged as partial and without a paper value.
    average = result["columns"][-1]
    assert average["name"] == "Average (2 of 9 sets)"
    assert average["value"] == pytest.approx((50.0 + 200 / 3) / 2)
    assert average["paper"] is None
    assert result["n_missing"] == 2 and set(result["missing_ids"]) == {"m2", "s4"}
    assert result["n_unused_predictions"] == 1


def test_ov_merd_uses_extractor_words():
    refs = [rec("o1", "OV-MERD+", "ovmer", ["happy", "excited"]), rec("o2", "OVMERD", "ovmer", ["angry"])]
    preds = {"o1": "happy, not excited", "o2": ""}
    result = score_predictions("mer-unibench", preds, refs)
    column = _col(result, "OV-MERD+")
    # Words: o1 -> [happy] (excited negated), o2 -> [] -> P=0, R=0.
    # Per wheel o1: P=1 and R = 1/|G| where |G| = clusters of {happy, excited}.
    sizes = column["details"]["per_wheel"]
    assert all(w["precision"] == pytest.approx(0.5) for w in sizes)
    assert column["value"] == pytest.approx(100 * column["details"]["fscore"])
    assert 0 < column["value"] < 100


# ---------------------------------------------------------------- MIR / ERG / EMER
def test_mintrec_uses_task_parser_and_candidates():
    cands = ["complain", "praise", "thank"]
    refs = [rec("i1", "MIntRec", "mir", "complain", cands), rec("i2", "MIntRec", "mir", "Thank", cands),
            rec("i3", "MIntRec", "mir", "praise", cands)]
    preds = {"i1": "The speaker wants to complain.", "i2": "thank", "i3": "greet"}
    result = score_predictions("mintrec", preds, refs)
    column = result["columns"][0]
    # 2 of 3 right; weighted F1 = (1 + 1 + 0) / 3.
    assert column["details"]["accuracy"] == pytest.approx(2 / 3)
    assert column["value"] == pytest.approx(200 / 3)
    assert column["paper"] == 58.17


def _erg_target(emotion):
    return {"event_scenario": "e", "speaker_emotion": emotion, "emotion_cause": "c",
            "goal_to_response": "g", "reply": "r"}


def test_avamerg_emotion_from_think_block():
    refs = [rec("e1", "AvaMERG", "erg", _erg_target("anxious")),
            rec("e2", "AvaMERG", "erg", _erg_target("joyful")),
            rec("e3", "AvaMERG", "erg", _erg_target("sad"))]
    preds = {
        "e1": "<think>the emotion of the speaker is anxious</think> That sounds hard.",
        "e2": "<think>the emotion of the speaker is content</think> So glad so glad.",
    }
    result = score_predictions("avamerg", preds, refs)
    acc = _col(result, "AvaMERG emotion accuracy")
    hit = _col(result, "AvaMERG hit rate")
    # Exact: e1 only -> 1/3. Coarse: anxious/anxious (sad) and content~joyful (happy) -> 2/3.
    assert acc["value"] == pytest.approx(100 / 3)
    assert hit["value"] == pytest.approx(200 / 3) and hit["paper"] == 91.13
    # Dist-1 over the two present replies, whitespace tokens keep punctuation:
    # "that sounds hard." 3/3; "so glad so glad." -> so, glad, so, glad. -> 3/4. Mean 0.875.
    assert _col(result, "AvaMERG Dist-1")["value"] == pytest.approx(87.5)


def test_emer_with_judge_and_missing_prediction(tmp_path):
    def respond(body, i):
        prompt = body["messages"][0]["content"]
        if "Summary:" in prompt or "Emotion:" in prompt:
            return "sad"
        return "8"

    refs = [rec("r1", "EMER", "eri", "He looks sad."), rec("r2", "EMER", "eri", "She is angry.")]
    with FakeChatServer(respond) as server:
        with LLMClient(LLMConfig(url=server.url, model="j", cache_dir=str(tmp_path))) as client:
            result = score_predictions("emer", {"r1": "He seems down."}, refs, judge=EmerJudge(client))
    clue = _col(result, "Clue Overlap")
    # r1 judged 8; r2 missing -> lowest score 1: mean 4.5 on the 1-10 scale.
    assert clue["value"] == pytest.approx(4.5) and clue["scale"] == "1-10" and clue["paper"] == 7.83
    with pytest.raises(ValueError, match="judge"):
        score_predictions("emer", {}, refs)


def test_synthaffect_groups_by_task_and_table_layout():
    refs = [rec("a", "SynthAffect", "mer", "happy"), rec("b", "SynthAffect", "msa", -0.8),
            rec("c", "SynthAffect", "mir", "greet", ["greet", "thank"])]
    preds = {"a": "happy", "b": "negative", "c": "greet"}
    result = score_predictions("synthaffect", preds, refs)
    assert [c["name"] for c in result["columns"]] == ["MSA", "MER", "MIR"]
    table = markdown_table(result, "Tiny")
    assert "| Model | MSA | MER | MIR |" in table
    assert "| Tiny | 100.00 | 100.00 | 100.00 |" in table
    assert "Nano-EmoX (paper)" not in table  # no published numbers for this benchmark
    with pytest.raises(ValueError, match="unknown benchmark"):
        score_predictions("nope", preds, refs)


# ---------------------------------------------------------------- CLI
def test_cli_score_writes_json_and_markdown(tmp_path, capsys):
    manifest = tmp_path / "refs.jsonl"
    write_manifest(manifest, [rec("x1", "MELD", "mer", "joy"), rec("x2", "MELD", "mer", "anger")])
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"id": "x1", "prediction": "happy"}) + "\n"
                     + json.dumps({"id": "x2", "prediction": "calm"}) + "\n")
    out = tmp_path / "out"
    code = main(["score", "--benchmark", "mer-unibench", "--predictions", str(preds),
                 "--references", str(manifest), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| Nano-EmoX (paper) | 56.55 |" in printed and "| Ours | 50.00 |" in printed
    saved = json.loads((out / "score_mer-unibench.json").read_text())
    assert saved["columns"][0]["name"] == "MELD" and saved["columns"][0]["value"] == pytest.approx(50.0)
    assert (out / "score_mer-unibench.md").read_text().startswith("| Model | MELD |")
    # Problems are reported, not raised.
    assert main(["score", "--benchmark", "emer", "--predictions", str(preds),
                 "--references", str(manifest)]) == 2
    assert main(["score", "--benchmark", "mintrec", "--predictions", str(tmp_path / "none.jsonl"),
                 "--references", str(manifest)]) == 2
    assert "not found" in capsys.readouterr().err  # errors go to stderr


def test_cli_score_from_data_root(tmp_path, capsys):
    # One MER-UniBench set in the converter's layout (docs/datasets.md).
    meld = tmp_path / "data" / "MELD"
    (meld / "video").mkdir(parents=True)
    (meld / "label.csv").write_text("name,emo\ns1,joy\ns2,anger\n")
    (meld / "subtitle.csv").write_text("name,english\ns1,hello\ns2,go away\n")
    for stem in ("s1", "s2"):
        (meld / "video" / f"{stem}.mp4").write_bytes(b"")
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"id": "meld_s1", "prediction": "joyful"}\n{"id": "meld_s2", "prediction": "so furious"}\n')
    code = main(["score", "--benchmark", "mer-unibench", "--predictions", str(preds),
                 "--data-root", str(tmp_path / "data")])
    assert code == 0
    assert "| Ours | 100.00 | 100.00 |" in capsys.readouterr().out
