"""The demo report's pure parts: the intact ERG template, what shows the model did not learn, the targets,
the training records it reads; and `.ci/run` calling the check."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from conftest import synth_records

from nanoemox.demo.diagnostics import (
    mer_accuracy_by_cue,
    score_texts,
    think_intact,
    train_subset,
)
from nanoemox.demo.report import EXTRA_TARGETS, TARGETS, learning_problems
from nanoemox.tasks import get_task

STEPS = ("1. Event scenario: A friend calls.\n2. Speaker's emotion: the emotion of the speaker is happy.\n"
         "3. Emotion cause: The speaker feels glad.\n4. Goal of the response: Share the joy.")


# ---------------------------------------------------------------------- think_intact


def test_think_intact_accepts_the_template():
    erg = get_task("erg")
    target = {"event_scenario": "A friend calls", "speaker_emotion": "happy", "emotion_cause": "c",
              "goal_to_response": "g", "reply": "How lovely!"}
    assert think_intact(erg.format_target(target))
    assert think_intact(f"<think>{STEPS}</think>\nThat is wonderful.")
    assert think_intact(f"  <think>\n{STEPS}\n</think> That is wonderful.\n")  # surrounding whitespace aside
    # Every SynthAffect ERG target is intact.
    assert all(think_intact(erg.format_target(r.target)) for r in synth_records(20) if r.task == "erg")


@pytest.mark.parametrize("text", [
    None, "", "That is wonderful.",
    f"<think>{STEPS}\nThat is wonderful.",  # no closing tag
    f"<think>{STEPS}</think>\nThat is </think> wonderful.",  # two closing tags
    f"<think>{STEPS}</think></think>\nThat is wonderful.",
    f"<think>{STEPS.replace('3. Emotion cause: The speaker feels glad.', '')}</think>\nThat is wonderful.",  # step 3
    f"<think>{STEPS.replace(chr(10) + '2.', ' 2.')}</think>\nThat is wonderful.",  # step 2 not on its own line
    f"<think>{STEPS}\n5. Extra step.</think>\nThat is wonderful.",  # a fifth step
    f"<think>{STEPS.replace('1. Event', '2. Event')}</think>\nThat is wonderful.",  # out of order
    f"<think>{STEPS}</think>",  # empty reply
    f"<think>{STEPS}</think>\n   \n",
    f"Sure. <think>{STEPS}</think>\nThat is wonderful.",  # does not start with <think>
    f"<think><think>{STEPS}</think>\nThat is wonderful.",
])
def test_think_intact_refuses_a_broken_template(text):
    assert not think_intact(text)


def test_think_share_has_an_interval():
    records = [r for r in synth_records(60) if r.split == "test" and r.task != "eri"]
    erg = [r for r in records if r.task == "erg"]
    texts = {r.id: get_task(r.task).format_target(r.target) for r in records if r.task == "erg"}
    broken = {r.id: texts[r.id].replace("</think>", "") for r in erg[: len(erg) // 2]}
    scored = score_texts(records, {**texts, **broken}, resamples=50)["erg_think_intact"]
    share = (len(erg) - len(broken)) / len(erg)
    assert scored["value"] == pytest.approx(share) and scored["n"] == len(erg)
    assert scored["low"] <= share <= scored["high"]


# ---------------------------------------------------------------------- learning_problems


def _report() -> dict:
    """A report's test split that shows the model learned: every interval above every baseline, every
    single-cue group well above chance (1/7)."""
    intervals = {k: [0.70, 0.90] for k in TARGETS}
    baselines = {"text_only": {k: 0.50 for k in TARGETS}, "majority": {k: 0.30 for k in TARGETS},
                 "chance": {k: 0.15 for k in TARGETS}}
    return {**{k: 0.80 for k in TARGETS}, "intervals": intervals, "baselines": baselines,
            "per_cue_accuracy": {"face": 0.75, "voice": 0.60, "text": 0.95, "face+voice": 0.10}}


def test_learning_problems_passes_a_model_that_learned():
    assert learning_problems(_report()) == []
    exactly = _report()
    exactly["per_cue_accuracy"]["voice"] = 1 / 7 + 0.30 + 1e-9  # at the margin
    assert learning_problems(exactly) == []


def _mutated(change) -> dict:
    report = copy.deepcopy(_report())
    change(report)
    return report


@pytest.mark.parametrize("change, needle", [
    # an interval that touches its majority baseline
    (lambda r: r["baselines"]["majority"].update(msa_waf=0.70), "MSA WAF"),
    (lambda r: r["intervals"].update(mir_accuracy=[0.29, 0.90]), "MIR accuracy"),
    # the text-only model as good as the interval's lower bound
    (lambda r: r["baselines"]["text_only"].update(erg_emotion_accuracy=0.75), "ERG emotion accuracy"),
    # a single-cue group at chance + 0.2, and one not evaluated
    (lambda r: r["per_cue_accuracy"].update(voice=1 / 7 + 0.2), "voice-cue"),
    (lambda r: r["per_cue_accuracy"].pop("face"), "face-cue"),
    # a baseline or interval the report lacks
    (lambda r: r["baselines"].pop("chance"), "chance"),
    (lambda r: r["intervals"].pop("ovmer_fscore"), "OV-MER"),
])
def test_learning_problems_finds_each_failure(change, needle):
    problems = learning_problems(_mutated(change))
    assert problems and all(needle in p for p in problems), problems


def test_targets_are_the_issues():
    assert TARGETS == {"mer_accuracy": 0.90, "msa_waf": 0.90, "mir_accuracy": 0.85, "ovmer_fscore": 0.65,
                       "erg_emotion_accuracy": 0.80}
    floors = {k: t for k, (t, _, at_most) in EXTRA_TARGETS.items() if not at_most}
    assert floors == {"erg_think_intact": 0.95, "train_mer_accuracy": 0.95, "face_cue_mer_accuracy": 0.80,
                      "voice_cue_mer_accuracy": 0.80, "text_cue_mer_accuracy": 0.80}
    ceilings = {k: t for k, (t, _, at_most) in EXTRA_TARGETS.items() if at_most}
    assert ceilings == {f"{cue}_masked_mer_accuracy": pytest.approx(1 / 7 + 0.15) for cue in ("face", "voice", "text")}


def test_ci_checks_the_report_with_learning_problems():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "learning_problems(report)" in ci and "sys.exit" in ci


# ---------------------------------------------------------------------- the training records read


def test_train_subset_is_seeded_capped_and_train_only():
    records = synth_records(60)
    chosen = train_subset(records, 5, seed=0)
    assert {r.split for r in chosen} == {"train"}
    per_task = {t: sum(r.task == t for r in chosen) for t in ("mer", "msa", "mir", "ovmer", "erg", "eri")}
    assert per_task == {"mer": 5, "msa": 5, "mir": 5, "ovmer": 5, "erg": 5, "eri": 0}
    assert [r.id for r in chosen] == [r.id for r in train_subset(records, 5, seed=0)]
    assert [r.id for r in chosen] != [r.id for r in train_subset(records, 5, seed=1)]
    order = {r.id: i for i, r in enumerate(records)}
    assert [order[r.id] for r in chosen] == sorted(order[r.id] for r in chosen)
    every = train_subset(records, 10_000, seed=0)
    assert len(every) == sum(r.split == "train" and r.task != "eri" for r in records)


def test_mer_accuracy_by_cue_counts_missing_answers_wrong():
    records = [r for r in synth_records(60) if r.task == "mer" and not r.extra.get("conflict")]
    face = [r for r in records if r.extra["cue_group"] == "face"]
    texts = {r.id: r.target for r in records}
    texts.pop(face[0].id)
    by_cue = mer_accuracy_by_cue(records, texts)
    assert by_cue["face"] == {"accuracy": (len(face) - 1) / len(face), "n": len(face)}
    assert by_cue["voice"]["accuracy"] == 1.0
