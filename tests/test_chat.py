"""`nanoemox chat` and `Conversation`: piped turns, clips, history as trained, /reset, /quit."""

from __future__ import annotations

import io

import pytest

from nanoemox.cli import main
from nanoemox.cli.cmd_chat import parse_line
from nanoemox.inference import Conversation, Predictor
from nanoemox.media.synth import write_video

CANNED = ("<think>1. Event scenario: a lost game.\n2. Speaker's emotion: the emotion of the speaker is sad.\n"
          "3. Emotion cause: the loss.\n4. Goal of the response: comfort.</think>\nThat sounds hard, I am sorry.")


@pytest.fixture()
def canned(monkeypatch):
    """Replace generation by a fixed ERG answer and keep the prompts the model was given."""
    prompts = []

    def fake_generate(self, samples, task=None, max_new_tokens=None):
        prompts.extend((self.tokenizer.decode(s["input_ids"]), bool(s["video_present"])) for s in samples)
        return [CANNED for _ in samples]

    monkeypatch.setattr(Predictor, "generate", fake_generate)
    return prompts


def test_parse_line():
    assert parse_line("/clip  a b.mp4 \n") == ("clip", "a b.mp4", None)
    assert parse_line("/QUIT") == ("quit", None, None)
    assert parse_line("so tired ||| me.mp4") == ("", "me.mp4", "so tired")
    assert parse_line("plain words | not a clip") == ("", None, "plain words | not a clip")


def test_conversation_keeps_history_without_thinking(model_dir, canned):
    chat = Conversation(Predictor.from_pretrained(model_dir))
    first = chat.send("We lost the final.")
    assert first["reply"] == "That sounds hard, I am sorry." and first["emotion"] == "sad"
    assert first["think"].startswith("1. Event scenario")
    chat.send("And I missed the last shot.")
    assert chat.history == [
        {"role": "speaker", "text": "We lost the final."},
        {"role": "listener", "text": "That sounds hard, I am sorry."},
        {"role": "speaker", "text": "And I missed the last shot."},
        {"role": "listener", "text": "That sounds hard, I am sorry."},
    ]
    second_prompt = canned[1][0]
    assert "We lost the final." in second_prompt and "I am sorry" in second_prompt
    assert "<think>" not in second_prompt and "Event scenario" not in second_prompt
    chat.reset()
    assert chat.history == []


def test_chat_rejects_malformed_history(model_dir):
    predictor = Predictor.from_pretrained(model_dir)
    from nanoemox.inference import chat_reply

    with pytest.raises(ValueError, match="history turn 0"):
        chat_reply(predictor, "hi", [{"role": "narrator", "text": "x"}])


def test_chat_cli_piped(model_dir, tmp_path, canned, monkeypatch, capsys):
    clip = write_video(tmp_path / "me.mp4", seconds=0.5, fps=10, size=(32, 32), audio_rate=16000)
    script = "\n".join([
        "Hello there",
        f"/clip {clip}",
        "Look at me now",
        f"and now ||| {tmp_path / 'missing.mp4'}",
        "/reset",
        "Fresh start",
        "/wat",
        "/quit",
        "never read",
    ]) + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    code = main(["chat", "--model", str(model_dir), "--show-thinking"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("listener> That sounds hard, I am sorry.") == 3
    assert out.count("[thinking] 1. Event scenario") == 3
    assert "could not use that message" in out and "missing.mp4" in out
    assert "(conversation cleared)" in out and "unknown command /wat" in out
    assert [video for _, video in canned] == [False, True, False]  # the clip went with the second message only
    assert "Hello there" in canned[1][0]  # history carried into the next turn
    assert "Hello there" not in canned[2][0]  # and cleared by /reset
    assert all("never read" not in prompt for prompt, _ in canned)


def test_chat_cli_end_of_input_without_thinking(model_dir, canned, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("just one line"))
    assert main(["chat", "--model", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "listener> That sounds hard" in out and "[thinking]" not in out


def test_chat_real_model_answers(model_dir, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hi\nHow are you?\n"))
    assert main(["chat", "--model", str(model_dir), "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.count("listener>") == 2
