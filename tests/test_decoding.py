"""Decoding is what it says: plain argmax when greedy, budgets from data, truncation marked."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from nanoemox.data.manifest import Record
from nanoemox.decoding import (
    BUDGETS_FILE, DEFAULT_MAX_NEW_TOKENS, Decoding, answer_budgets, parse_max_new_tokens, read_budgets,
    write_budgets,
)

from conftest import make_media, make_prompt

# What Qwen2.5-Instruct's generation_config.json switches on.
INSTRUCT_SETTINGS = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.5}


@pytest.fixture()
def instruct_like_dir(model_dir, tmp_path):
    """A copy of the tiny model folder whose language generation config carries sampling and a penalty."""
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    path = folder / "language" / "generation_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**config, **INSTRUCT_SETTINGS}))
    return folder


def _argmax_loop(model, input_ids, media, steps: int) -> list[int]:
    """Greedy decoding by hand: full forward each step, placeholders excluded, argmax."""
    language = model.language
    embeds = model.inputs_embeds(input_ids, **media)  # [1, L, D]
    placeholders = torch.tensor(list(model.placeholder_ids.values()))
    out = []
    with torch.no_grad():
        for _ in range(steps):
            logits = language(inputs_embeds=embeds).logits[0, -1].clone()
            logits[placeholders] = float("-inf")
            token = int(torch.argmax(logits))
            out.append(token)
            embeds = torch.cat([embeds, language.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
    return out


def test_greedy_is_plain_argmax_whatever_the_checkpoint_says(instruct_like_dir, tiny_config):
    from nanoemox.model import NanoEmoX
    from nanoemox.processor import NanoEmoXProcessor

    model = NanoEmoX.from_pretrained(instruct_like_dir).eval()
    tokenizer = NanoEmoXProcessor.from_pretrained(instruct_like_dir).tokenizer
    assert model.language.generation_config.repetition_penalty in (None, 1.0)  # the file's 1.5 was dropped
    assert not model.language.generation_config.do_sample
    ids = tokenizer([make_prompt(tiny_config)], return_tensors="pt")["input_ids"]
    media = make_media(tiny_config, batch=1)
    expected = _argmax_loop(model, ids, media, steps=12)
    # Inheriting the file's sampling (temperature 0.7, top-k 20) would change the answer
    # from one seed to the next; plain greedy gives the hand-made argmax path every time.
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        assert model.generate(ids, **media, max_new_tokens=12, eos_token_id=-1)[0].tolist() == expected
    penalised = model.generate(ids, **media, max_new_tokens=12, eos_token_id=-1, repetition_penalty=100.0,
                               )[0].tolist()
    assert len(set(penalised)) == len(penalised)  # a penalty acts when asked for


def test_sampling_knobs_need_sampling_and_are_validated():
    with pytest.raises(ValueError, match="only act when sampling"):
        Decoding(temperature=0.7)
    with pytest.raises(ValueError, match="top_p"):
        Decoding(do_sample=True, top_p=1.5)
    assert Decoding().effective() == {"do_sample": False, "strategy": "greedy", "temperature": None, "top_p": None,
                                      "top_k": None, "repetition_penalty": 1.0, "seed": None}
    sampled = Decoding(do_sample=True, top_k=5, seed=3).effective()
    assert sampled["temperature"] == 1.0 and sampled["top_k"] == 5 and sampled["seed"] == 3


def test_parse_max_new_tokens():
    assert parse_max_new_tokens("64") == 64
    assert parse_max_new_tokens("eri=256, erg=384") == {"eri": 256, "erg": 384}
    for bad in ("eri", "xyz=3", "eri=0", "eri=-1", ""):
        with pytest.raises(ValueError):
            parse_max_new_tokens(bad)


def test_budgets_come_from_the_training_targets(tiny_tokenizer, tmp_path):
    long_reason = " ".join(["the speaker frowns and speaks slowly"] * 12)
    records = [Record(f"e{i}", "X", "train", "eri", {}, target=long_reason if i < 50 else "short")
               for i in range(100)]
    records += [Record(f"m{i}", "X", "train", "mer", {}, target="happy") for i in range(10)]
    budgets, stats = answer_budgets(records, tiny_tokenizer)
    n_reason = len(tiny_tokenizer(long_reason, add_special_tokens=False)["input_ids"]) + 1
    assert stats["eri"]["max_tokens"] == n_reason and stats["eri"]["targets"] == 100
    assert budgets["eri"] >= n_reason + 8 and budgets["eri"] == int(-(-1.25 * n_reason // 1)) + 8
    assert budgets["mer"] < budgets["eri"] and set(budgets) == {"eri", "mer"}
    write_budgets(tmp_path, budgets, stats)
    assert read_budgets(tmp_path) == budgets
    (tmp_path / BUDGETS_FILE).write_text('{"budgets": {"eri": "lots"}}')
    with pytest.raises(ValueError, match="not a valid answer-budget file"):
        read_budgets(tmp_path)


def test_predictor_budget_precedence_and_truncation(model_dir, tmp_path, tiny_config):
    from nanoemox.inference import Predictor

    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    write_budgets(folder, {"eri": 5, "mer": 3}, {})
    predictor = Predictor.from_pretrained(folder, device="cpu", max_new_tokens={"mer": 4})
    assert predictor.budget("eri") == 5 and predictor.budget("mer") == 4
    assert predictor.budget("erg") == DEFAULT_MAX_NEW_TOKENS["erg"]
    settings = predictor.settings()
    assert settings["max_new_tokens_source"]["mer"] == "caller"
    assert settings["max_new_tokens_source"]["eri"] == "model folder"
    assert settings["max_new_tokens_source"]["erg"] == "default"
    assert settings["decoding"]["strategy"] == "greedy"
    # A random tiny model never says EOS within 3 tokens: every answer is marked truncated.
    sample = predictor.sample("eri", text="hello")
    answers = predictor.generate_batch([sample, sample], 3)
    assert [cut for _, cut in answers] == [True, True]
    # An answer that ends with EOS inside its budget is not truncated; one that fills it is.
    eos = predictor.tokenizer.eos_token_id
    word = predictor.tokenizer("happy", add_special_tokens=False)["input_ids"][0]
    predictor.model.generate = lambda **kw: torch.tensor([[word, eos, eos], [word, word, word]])
    answers = predictor.generate_batch([sample, sample], 3)
    assert [cut for _, cut in answers] == [False, True]


def test_eval_records_decoding_budgets_and_truncation(model_dir, tmp_path, capsys):
    """`nanoemox eval` on SynthAffect with a real tiny model: settings in run.json and every line."""
    from nanoemox.cli import main
    from nanoemox.data.synth import MediaConfig, generate

    corpus = tmp_path / "synth"
    generate(corpus, 20, seed=0, media=MediaConfig(size=64, fps=4, duration=1.0), workers=1)
    out = tmp_path / "ev"
    rc = main(["eval", "--benchmark", "synthaffect", "--data-root", str(corpus), "--model", str(model_dir),
               "--out", str(out), "--limit", "6", "--no-plots", "--no-progress", "--device", "cpu",
               "--max-new-tokens", "eri=2,erg=3,ovmer=2,mer=2,mir=2,msa=2"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    run = json.loads((out / "run.json").read_text())
    assert run["decoding"]["strategy"] == "greedy" and run["decoding"]["repetition_penalty"] == 1.0
    assert run["effective"]["max_new_tokens"]["erg"] == 3
    assert run["effective"]["max_new_tokens_source"]["erg"] == "caller"
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(line["decoding"] == run["decoding"] for line in lines)
    cut = [line for line in lines if line["truncated"]]
    assert all(line["max_new_tokens"] <= 3 for line in lines)
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["truncated"] == len(cut) > 0  # a random model rarely says EOS within 2-3 tokens
    assert f"Truncated: {len(cut)} generated answer(s)" in printed and "Decoding: greedy" in printed
    # Resuming with another decoding is refused; the same settings resume.
    rc = main(["eval", "--benchmark", "synthaffect", "--data-root", str(corpus), "--model", str(model_dir),
               "--out", str(out), "--limit", "6", "--no-plots", "--no-progress", "--repetition-penalty", "1.2",
               "--max-new-tokens", "eri=2,erg=3,ovmer=2,mer=2,mir=2,msa=2"])
    assert rc == 2 and "made with other settings (decoding" in capsys.readouterr().err
    assert main(["eval", "--benchmark", "synthaffect", "--data-root", str(corpus), "--model", str(model_dir),
                 "--out", str(out), "--limit", "6", "--no-plots", "--no-progress", "--temperature", "0.5"]) == 2
    assert "only act when sampling" in capsys.readouterr().err
