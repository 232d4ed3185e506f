"""P2E task mixture: frequencies, determinism, exact resume, modes and errors."""

from __future__ import annotations

from collections import Counter

import pytest

from nanoemox.data.manifest import Record
from nanoemox.data.mixture import TaskMixture, group_by_task, size_weights
from nanoemox.tasks import phase3_weights


def _records(counts: dict[tuple[str, str], int]) -> list[Record]:
    return [Record(id=f"{task}-{ds}-{i}", dataset=ds, split="train", task=task)
            for (task, ds), n in counts.items() for i in range(n)]


PHASE3 = {("mer", "A"): 30, ("mer", "B"): 10, ("ovmer", "C"): 20, ("mir", "D"): 5,
          ("eri", "C"): 20, ("eri", "E"): 40, ("erg", "F"): 15}


def test_frequencies_follow_weights():
    mix = TaskMixture(group_by_task(_records(PHASE3)), seed=7)
    n = 20000
    freq = Counter(r.task for r in mix.take(n))
    weights = phase3_weights()
    assert weights == {"mer": 18, "ovmer": 28, "mir": 5, "eri": 31, "erg": 18}  # the paper's phase-3 mixture
    total = sum(weights.values())
    for task, w in weights.items():
        assert abs(freq[task] / n - w / total) < 0.015, (task, freq[task] / n)
    assert mix.position == n


def test_records_within_task_are_uniform():
    mix = TaskMixture(group_by_task(_records({("mer", "A"): 4})), weights={"mer": 1}, seed=1)
    freq = Counter(r.id for r in mix.take(8000))
    assert len(freq) == 4 and all(abs(c / 8000 - 0.25) < 0.03 for c in freq.values())


def test_deterministic_by_seed():
    groups = group_by_task(_records(PHASE3))
    a = [r.id for r in TaskMixture(groups, seed=3).take(300)]
    b = [r.id for r in TaskMixture(groups, seed=3).take(300)]
    c = [r.id for r in TaskMixture(groups, seed=4).take(300)]
    assert a == b and a != c


@pytest.mark.parametrize("mode", ["task", "dataset"])
def test_exact_resume(mode):
    groups = group_by_task(_records(PHASE3))
    full = [r.id for r in TaskMixture(groups, mode=mode, seed=11).take(500)]
    first = TaskMixture(groups, mode=mode, seed=11)
    head = [r.id for r in first.take(237)]
    state = first.state_dict()
    assert state["position"] == 237
    resumed = TaskMixture(groups, mode=mode, seed=11)
    resumed.load_state_dict(state)
    assert head + [r.id for r in resumed.take(263)] == full
    jumped = TaskMixture(groups, mode=mode, seed=11).skip_to(400)
    assert [r.id for r in jumped.take(100)] == full[400:]


def test_resume_far_ahead_is_cheap():
    mix = TaskMixture(group_by_task(_records(PHASE3)), seed=0).skip_to(10**12)
    assert mix.take(3) == [mix.draw(10**12 + i) for i in range(3)]


def test_dataset_mode_uniform_over_groups_and_fractions():
    groups = group_by_task(_records(PHASE3))
    mix = TaskMixture(groups, mode="dataset", fractions={"eri/E": 0.25, "A": 0.5}, seed=5)
    assert len(mix.probabilities) == 7
    assert all(abs(p - 1 / 7) < 1e-12 for p in mix.probabilities.values())
    drawn = mix.take(14000)
    by_group = Counter(f"{r.task}/{r.dataset}" for r in drawn)
    assert all(abs(c / 14000 - 1 / 7) < 0.02 for c in by_group.values())
    assert len({r.id for r in drawn if r.dataset == "E"}) == 10  # 25% of 40 kept
    assert len({r.id for r in drawn if r.dataset == "A"}) == 15
    # the mode changes what is drawn: the rare MIR task is no longer rare
    task_mix = Counter(r.task for r in TaskMixture(groups, seed=5).take(14000))
    assert by_group["mir/D"] > 2 * task_mix["mir"]


def test_mode_mismatch_and_bad_mode():
    groups = group_by_task(_records(PHASE3))
    state = TaskMixture(groups, mode="dataset", seed=2).state_dict()
    with pytest.raises(ValueError, match="mode"):
        TaskMixture(groups, mode="task", seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="mode"):
        TaskMixture(groups, mode="other")


def test_missing_task_gives_clear_error():
    groups = group_by_task(_records({("mer", "A"): 3, ("eri", "B"): 3}))
    with pytest.raises(ValueError, match=r"\['ovmer', 'mir', 'erg'\].*set their weight to 0"):
        TaskMixture(groups)
    mix = TaskMixture(groups, weights={"mer": 1, "eri": 1, "ovmer": 0})
    assert {r.task for r in mix.take(200)} == {"mer", "eri"}
    with pytest.raises(ValueError, match="unknown task"):
        TaskMixture(groups, weights={"mer": 1, "xyz": 1})


def test_from_records_and_size_weights():
    records = _records({("mer", "A"): 30, ("mir", "B"): 10})
    mix = TaskMixture.from_records(records, size_weights(group_by_task(records)), seed=9)
    assert mix.probabilities == {"mer": 0.75, "mir": 0.25}
    assert len(mix) == 40
    freq = Counter(r.task for r in mix.take(8000))
    assert abs(freq["mer"] / 8000 - 0.75) < 0.02


def test_balanced_task_draws_every_class_equally_and_keeps_task_shares():
    intents = ["complain"] * 25 + ["greet"] * 6 + ["thank"] * 9  # 62% / 15% / 23% of the pool
    mir = [Record(id=f"mir-{i}", dataset="D", split="train", task="mir", target=t) for i, t in enumerate(intents)]
    mer = [Record(id=f"mer-{i}", dataset="A", split="train", task="mer", target="anger" if i % 4 else "sad")
           for i in range(40)]
    groups = group_by_task(mir + mer)
    n = 12000
    balanced = TaskMixture(groups, {"mer": 1, "mir": 1}, seed=5, balance=["mir"]).take(n)
    tasks = Counter(r.task for r in balanced)
    assert abs(tasks["mir"] / n - 0.5) < 0.02  # the task shares are the weights'
    by_intent = Counter(r.target for r in balanced if r.task == "mir")
    assert all(abs(c / tasks["mir"] - 1 / 3) < 0.03 for c in by_intent.values()), by_intent
    by_emotion = Counter(r.target for r in balanced if r.task == "mer")  # MER is not balanced here
    assert abs(by_emotion["sad"] / tasks["mer"] - 0.25) < 0.03
    plain = TaskMixture(groups, {"mer": 1, "mir": 1}, seed=5).take(n)
    assert Counter(r.target for r in plain if r.task == "mir")["complain"] > 0.55 * tasks["mir"]
    # Unbalanced streams are what they were before balancing existed: the same tasks, draw by draw.
    assert [r.task for r in plain] == [r.task for r in balanced]
    # Resume is exact with balance too.
    again = TaskMixture(groups, {"mer": 1, "mir": 1}, seed=5, balance=["mir"]).skip_to(500).take(100)
    assert [r.id for r in again] == [r.id for r in balanced[500:600]]
    with pytest.raises(ValueError, match="closed-set"):
        TaskMixture(groups, {"mer": 1, "mir": 1}, balance=["erg"])
