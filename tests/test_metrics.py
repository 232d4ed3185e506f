"""Metrics checked on small cases worked out by hand (the working is in the comments)."""

from __future__ import annotations

import csv

import pytest

from nanoemox.metrics import (
    distinct_n,
    erg_scores,
    hit_rate,
    intent_scores,
    load_tables,
    ov_fscore,
    sentiment_waf,
    wheel_cluster,
)
from nanoemox.metrics.wheel import read_wheel


# ---------------------------------------------------------------- word -> wheel cluster
def _write_tiny_tables(root):
    """Tables small enough to trace the lookup by hand."""
    with open(root / "format.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "format"])
        w.writerow(["elated", "elated,joy"])
        w.writerow(["cheer", "cheer, joy ,cheery"])
        w.writerow(["happy", "happy,happily"])
        w.writerow(["gloomy", "gloomy"])
    header = [f"{k}_run{i}" for i in range(1, 9) for k in ("word", "synonym")]
    with open(root / "synonym.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        # run 1 says elated ~ happy; run 2 says cheer ~ content; other runs repeat run 1.
        row = ["Happy", "elated"] + ["content", "cheer"] + ["happy", "elated"] * 6
        w.writerow(row)
    wheel = "level1,level2,level3\n Good , Content ,Peaceful\n,,Happy \nCalm,Serene,Content\n"
    for i in range(1, 6):
        (root / f"wheel{i}.csv").write_text(wheel)


def test_read_wheel_blank_cells_and_last_group_wins(tmp_path):
    _write_tiny_tables(tmp_path)
    # Row 2 inherits level1 "good" and level2 "content"; "content" reappears under
    # "calm" later, so the last listing wins.
    assert read_wheel(tmp_path / "wheel1.csv") == {
        "good": "good",
        "content": "calm",
        "peaceful": "good",
        "happy": "good",
        "calm": "calm",
        "serene": "calm",
    }


def test_tie_break_is_alphabetical_over_reachable_wheel_words(tmp_path):
    _write_tiny_tables(tmp_path)
    tables = load_tables(tmp_path)
    # "joy" is a form of elated and of cheer; elated -> happy, cheer -> content.
    # Sorted: [content, happy]; "content" is in the wheel, under "calm" (listed last).
    assert tables.reachable("joy") == ["content", "happy"]
    assert wheel_cluster(" JOY ", 1, tables) == "calm"
    # "happily" -> happy -> happy (self) -> level-1 "good".
    assert wheel_cluster("happily", 3, tables) == "good"
    # A form known to the table but with no synonym entry, and an unknown word.
    assert wheel_cluster("gloomy", 1, tables) is None
    assert wheel_cluster("gladness", 1, tables) is None
    with pytest.raises(ValueError):
        wheel_cluster("joy", 6, tables)


def test_shipped_tables_sizes_and_known_quirk():
    tables = load_tables()
    # The reference counts: 7386 surface forms, 1255 labels, 253 wheel words.
    assert len(tables.forms) == 7386
    assert len(tables.synonyms) == 1255
    assert len(set().union(*tables.clusters.values())) == 253
    # "fear" is a form of "fearless" too; "brave" (a synonym of fearless) sorts first
    # and sits in a positive group on wheels 2-5.
    assert [wheel_cluster("fear", w) for w in range(1, 6)] == ["scared", "happy", "joyful", "genius", "joyful"]
    assert wheel_cluster("neutral", 1) is None
    # "disappointed" is listed under "disgusted" and later under "sad" on wheel 2.
    assert wheel_cluster("Disappointed ", 2) == "sad"


# ---------------------------------------------------------------- hit rate / F-score
def test_hit_rate_skips_unmapped_references():
    # joy/happy share a cluster on every wheel (hit); sad vs angry never (miss);
    # "neutral" maps to nothing and is skipped: 1/2 on every wheel.
    out = hit_rate([["happy"], ["sad"], ["anything"]], ["joy", "angry", "neutral"])
    assert out["per_wheel"] == [0.5] * 5
    assert out["counted"] == [2] * 5
    assert out["score"] == pytest.approx(0.5)


def test_hit_rate_per_wheel_quirk():
    # "fear" -> [scared, happy, joyful, genius, joyful]; "happy" -> [happy, happy,
    # joyful, joy, powerful]: hits on wheels 2 and 3 only -> 2/5.
    out = hit_rate([["fear"]], ["happy"])
    assert out["per_wheel"] == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert out["score"] == pytest.approx(0.4)


def test_ov_fscore_hand_computed():
    # Sample 1: G={happy}, P={happy, sad} -> p=1/2, r=1. Sample 2: P empty -> 0, 0.
    # Sample 3: reference "neutral" maps to nothing -> skipped.
    # Mean p=1/4, r=1/2, F=2*(1/4)(1/2)/(3/4)=1/3 on each wheel.
    out = ov_fscore([["happy", "sad"], [], ["sad"]], [["joy"], ["angry"], ["neutral"]])
    assert out["precision"] == pytest.approx(0.25)
    assert out["recall"] == pytest.approx(0.5)
    assert out["fscore"] == pytest.approx(1 / 3)
    assert out["counted"] == [2] * 5
    assert all(w["fscore"] == pytest.approx(1 / 3) for w in out["per_wheel"])


def test_emotion_metrics_reject_length_mismatch():
    with pytest.raises(ValueError):
        hit_rate([["happy"]], ["joy", "sad"])
    with pytest.raises(ValueError):
        ov_fscore([], [["joy"]])


# ---------------------------------------------------------------- MSA / MIR
def test_sentiment_waf_drops_zero_and_neutral_is_negative():
    # The 4th sample (valence 0) is dropped. Kept refs [1, 2, 3, -1] -> y=[T, T, T, F]; preds -> yhat=[T, T, F, F] (neutral is
    # not positive). Accuracy 3/4. Class T: P=1, R=2/3, F1=0.8 (support 3);
    # class F: P=1/2, R=1, F1=2/3 (support 1). WAF = (3*0.8 + 2/3) / 4.
    out = sentiment_waf(["positive", "Positive", "neutral", "positive", "negative"], [1, 2, 3, 0.0, -1])
    assert out["counted"] == 4
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["waf"] == pytest.approx((3 * 0.8 + 2 / 3) / 4)


def test_intent_scores_case_and_unknown_labels():
    # Correct: complain, praise -> accuracy 2/4. F1: complain 1 (support 1), praise 1
    # (support 1), thank 0 (support 2, never predicted) -> weighted (1+1+0)/4 = 0.5;
    # weighted precision the same with zero_division=0. None and "joke" just miss.
    out = intent_scores(["Complain", " praise", None, "joke"], ["complain", "PRAISE", "thank", "thank"])
    assert out["accuracy"] == pytest.approx(0.5)
    assert out["weighted_f1"] == pytest.approx(0.5)
    assert out["weighted_precision"] == pytest.approx(0.5)


# ---------------------------------------------------------------- ERG
def test_distinct_n_ignores_think_and_skips_short_replies():
    replies = ["<think>the emotion of the speaker is sad</think> I am so so sorry", "okay", ""]
    # 1-grams: "i am so so sorry" -> 4/5; "okay" -> 1/1; "" skipped -> mean 0.9.
    assert distinct_n(replies, 1) == pytest.approx(0.9)
    # 2-grams: 4 distinct of 4 -> 1; "okay" has none and is skipped -> 1.0.
    assert distinct_n(replies, 2) == pytest.approx(1.0)


def test_erg_scores_unknown_labels_are_misses():
    coarse = {"sad": "sad", "joyful": "happy", "content": "happy", "lonely": "sad"}
    # exact: sad=sad only -> 1/3; coarse: sad=sad, joyful~content (happy), unknown
    # "mystery" misses -> 2/3; a missing prediction (None) is also a miss.
    out = erg_scores(
        ["a b", "a a", "c d", "x"],
        ["Sad", "joyful", "mystery", None],
        ["sad", "content", "lonely", "sad"],
        coarse_map=coarse,
    )
    assert out["emotion_accuracy"] == pytest.approx(1 / 4)
    assert out["coarse_hit_rate"] == pytest.approx(2 / 4)
    # 1-grams: 1, 1/2, 1, 1 -> 0.875.
    assert out["dist1"] == pytest.approx(0.875)
    with pytest.raises(ValueError):
        erg_scores(["a"], [], ["sad"], coarse_map=coarse)


def test_erg_emotion_accuracy_folds_word_variants_as_mer_does():
    from nanoemox.tasks import get_task

    coarse = {"anger": "anger", "fear": "fear", "happy": "happy"}
    out = erg_scores(["a", "b", "c", "d"], ["angry", "Scared", "glad", "sad"], ["anger", "fear", "happy", "anger"],
                     coarse_map=coarse)
    assert out["emotion_accuracy"] == pytest.approx(3 / 4)
    # The MER parser folds the same words onto the same labels.
    labels = ["anger", "fear", "happy", "sad"]
    assert [get_task("mer").parse(w, labels) for w in ("angry", "scared", "glad")] == ["anger", "fear", "happy"]
