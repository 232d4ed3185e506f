"""The task registry owns task behaviour: a task registered at run time is seen by every view of the
registry, answered by analyze, scored by the metric it names, served by the OpenAI route and listed by
`GET /v1/tasks`; and outside the registry no code checks a task by its literal name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import nanoemox
from nanoemox.cli import main
from nanoemox.data.manifest import Record, validate
from nanoemox.eval.scoring import score_predictions
from nanoemox.inference import Predictor, analyze, clip_records
from nanoemox.media.synth import write_video
from nanoemox.serve import ServeSettings, create_app
from nanoemox.tasks import (
    CANDIDATE_TASKS, DEFAULT_MAX_NEW_TOKENS, SCORABLE_TASKS, TASK_NAMES, TASKS, TIMELINE_TASKS, get_task,
    register_task, registered, task_from_identifier, unregister_task,
)
from nanoemox.tasks.definitions import LabelTask
from nanoemox.tasks.parsing import strip_identifiers

LEVELS = ("low", "medium", "high")

# A toy closed-set task: how aroused the person is, chosen from three levels.
AROUSAL = LabelTask(
    name="arousal",
    identifier="[Arousal]",
    candidates=LEVELS,
    vocabulary=LEVELS,
    max_new_tokens=7,
    metric="intent",  # a label scored by weighted F1, as MIR's intents
    description="arousal level recognition",
    templates=("How aroused is the person in this clip? Answer low, medium or high.",),
    candidate_templates=("How aroused is the person in this clip? Choose one of: {candidates}. Answer with that "
                         "label only.",),
)


@pytest.fixture()
def arousal():
    register_task(AROUSAL)
    yield AROUSAL
    unregister_task(AROUSAL.name)


@pytest.fixture(scope="module")
def predictor(model_dir):
    return Predictor.from_pretrained(model_dir, max_new_tokens=6)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("arousal") / "clip.mp4", seconds=0.6, fps=10, size=(32, 32),
                       audio_rate=16000)


@pytest.fixture(scope="module")
def http(predictor, tmp_path_factory):
    app = create_app(predictor, ServeSettings(tmp_dir=str(tmp_path_factory.mktemp("uploads"))), model_name="tiny")
    with TestClient(app) as client:
        yield client


def test_views_of_the_registry_see_a_registered_task(arousal):
    assert TASK_NAMES[-1] == "arousal" and "arousal" in TASK_NAMES
    assert "arousal" in SCORABLE_TASKS and "arousal" in CANDIDATE_TASKS and "arousal" not in TIMELINE_TASKS
    assert DEFAULT_MAX_NEW_TOKENS["arousal"] == 7
    assert task_from_identifier("[AROUSAL] I can't sit still") == "arousal"
    assert strip_identifiers("[Arousal] high") == "high"  # an echoed identifier is no part of the answer
    assert validate({"id": "a", "dataset": "toy", "split": "test", "task": "arousal", "media": {},
                     "target": "high"}) is None
    assert "non-empty string" in validate({"id": "a", "dataset": "toy", "split": "test", "task": "arousal",
                                           "media": {}, "target": 3})
    with pytest.raises(ValueError, match="already registered"):
        register_task(AROUSAL)


def test_unregistering_removes_it_everywhere_and_the_paper_tasks_stay():
    with registered(AROUSAL):
        assert get_task("arousal") is AROUSAL
    assert "arousal" not in TASK_NAMES and "arousal" not in DEFAULT_MAX_NEW_TOKENS
    assert task_from_identifier("[Arousal] hi") is None and strip_identifiers("[Arousal] hi") == "[Arousal] hi"
    with pytest.raises(ValueError, match="unknown task"):
        get_task("arousal")
    with pytest.raises(ValueError, match="paper's tasks"):
        unregister_task("mer")
    with pytest.raises(ValueError, match="already names task 'mer'"):
        register_task(LabelTask(name="copy", identifier="[recognition]", templates=("x",)))
    assert list(TASKS) == ["msa", "mer", "ovmer", "eri", "mir", "erg"]


def test_analyze_answers_the_registered_task(arousal, predictor, clip, model_dir, capsys):
    records = clip_records(str(clip), ["arousal"], subtitle="I can't sit still!")
    assert records[0].candidates == list(LEVELS)  # a task that takes candidates is offered its own
    generated = next(analyze(predictor, [records]))
    assert list(generated["answers"]) == ["arousal"] and isinstance(generated["answers"]["arousal"]["text"], str)
    scored = next(analyze(predictor, [records], decode="score"))["answers"]["arousal"]
    assert list(scored["probabilities"]) == list(LEVELS) and scored["parsed"] in LEVELS
    # The command line's task list is the registry's too.
    assert main(["analyze", str(clip), "--tasks", "arousal", "--model", str(model_dir), "--json",
                 "--max-new-tokens", "4", "--no-progress"]) == 0
    assert '"arousal"' in capsys.readouterr().out


def test_scoring_uses_the_metric_the_task_names(arousal):
    records = [Record(f"a{i}", "Toy", "test", "arousal", target=level, candidates=list(LEVELS))
               for i, level in enumerate(LEVELS * 2)]
    right = {r.id: f"They seem {r.target}." for r in records}
    wrong = {**right, "a0": "They seem high."}
    columns = {}
    for name, predictions in (("right", right), ("wrong", wrong)):
        result = score_predictions("synthaffect", predictions, records)
        (column,) = [c for c in result["columns"] if c["name"] == "AROUSAL"]
        assert column["metric"] == "WAF" and column["n"] == len(records)  # the intent scorer's figure
        columns[name] = column["value"]
    assert columns["right"] == pytest.approx(100.0) and columns["wrong"] < columns["right"]


def _ask(http, **body):
    return http.post("/v1/chat/completions", json={"model": "tiny", "max_tokens": 4, **body})


def test_openai_route_serves_the_registered_task_and_still_refuses_unknown_ones(arousal, http):
    message = [{"role": "user", "content": "I can't sit still!"}]
    response = _ask(http, messages=message, task="arousal", candidates=["low", "high"])
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["nanoemox"]["task"] == "arousal"
    asked = _ask(http, messages=[{"role": "user", "content": "[Arousal] I can't sit still!"}])
    assert asked.status_code == 200 and asked.json()["choices"][0]["nanoemox"]["task"] == "arousal"
    unknown = _ask(http, messages=message, task="valence")
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "task"
    no_candidates = _ask(http, messages=message, task="eri", candidates=["low"])
    assert no_candidates.status_code == 400 and "mer and mir and arousal" in no_candidates.json()["error"]["message"]


def test_openai_route_refuses_the_task_once_unregistered(http):
    with registered(AROUSAL):
        assert _ask(http, messages=[{"role": "user", "content": "hi"}], task="arousal").status_code == 200
    assert _ask(http, messages=[{"role": "user", "content": "hi"}], task="arousal").status_code == 400


def test_task_list_route_lists_the_registry(arousal, http):
    response = http.get("/v1/tasks")
    assert response.status_code == 200
    tasks = {t["name"]: t for t in response.json()["tasks"]}
    assert list(tasks) == list(TASK_NAMES)
    assert tasks["arousal"] == {"name": "arousal", "description": "arousal level recognition",
                                "identifier": "[Arousal]", "candidates": list(LEVELS), "takes_candidates": True,
                                "timeline": False, "reply": False}
    assert tasks["msa"]["identifier"] == "" and tasks["msa"]["candidates"] == ["positive", "negative", "neutral"]
    assert not tasks["msa"]["takes_candidates"] and tasks["msa"]["timeline"]
    assert tasks["ovmer"]["candidates"] is None and tasks["erg"]["reply"] and not tasks["erg"]["timeline"]
    assert [n for n, t in tasks.items() if t["takes_candidates"]] == ["mer", "mir", "arousal"]
    assert "/v1/tasks" in http.get("/openapi.json").json()["paths"]


# ---------------------------------------------------------------------- no task names outside the registry

SOURCE = Path(nanoemox.__file__).parent
PAPER_TASKS = {"msa", "mer", "ovmer", "eri", "mir", "erg"}
# Code that writes each task's records or defines the tasks may name them.
OWNERS = ("tasks/", "data/converters/", "data/synth/records.py", "eval/metrics")
# Anything else that names a task, by (file, the function or module-level name it stands in), and why.
ALLOWED = {
    ("demo/diagnostics.py", "TASK_OF"):
        "the demo report's figures are named after the task each scores (mer_accuracy, msa_waf, ...)",
    ("demo/diagnostics.py", "_answer"):
        "a baseline's answer in the synthetic corpus's label form of each task, as data/synth/records.py writes it",
    ("demo/diagnostics.py", "_label"):
        "a baseline's label read from the synthetic corpus's per-task record extras",
    ("demo/diagnostics.py", "baseline_answers"):
        "the synthetic corpus's label set of each task that the chance baseline draws from",
}


def _task_names_in(path: Path) -> list[tuple[str, int]]:
    """(enclosing function or module-level name, line) of every string constant equal to a task name.

    Only whole string constants count, read from the syntax tree: comments, docstrings and longer
    messages that mention a task are prose, not checks, and are not reported."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = node.name if scope == "<module>" else scope
        elif scope == "<module>" and isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            scope = next((t.id for t in targets if isinstance(t, ast.Name)), scope)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PAPER_TASKS:
            found.append((scope, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "<module>")
    return found


def test_no_task_name_literal_outside_the_registry():
    stray, used = [], set()
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(SOURCE).as_posix()
        if rel.startswith(OWNERS):
            continue
        for scope, line in _task_names_in(path):
            if (rel, scope) in ALLOWED:
                used.add((rel, scope))
            else:
                stray.append(f"{rel}:{line} (in {scope})")
    assert not stray, ("task names checked outside nanoemox.tasks; ask the Task (or a role name such as "
                       "tasks.EMOTION_TASK) instead:\n  " + "\n  ".join(stray))
    assert used == set(ALLOWED), f"allow-list entries that no longer name a task: {sorted(set(ALLOWED) - used)}"


def test_the_literal_scan_finds_a_name_check(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Mentions "mer" in prose."""\n\n\ndef pick(task):\n    # "msa" in a comment\n'
                     '    return task == "erg"\n', encoding="utf-8")
    assert _task_names_in(probe) == [("pick", 6)]
