"""`nanoemox chat`: an empathetic conversation (ERG) with the model in the terminal.

Each line you type is one speaker turn; the model answers as the listener. Lines:

    some text                 a message
    some text ||| clip.mp4    a message with a clip of you saying it (video or audio file)
    /clip clip.mp4            attach a clip to the next message
    /reset                    forget the conversation so far
    /quit                     leave (end of input works too)

The history is kept as the model was trained on it: earlier speaker turns and the
model's replies without their reasoning. `--show-thinking` also prints the reasoning
(the `<think>` part). Input is read line by line, so a conversation can be piped in.
"""

from __future__ import annotations

import argparse
import sys

from nanoemox.cli.options import add_predictor_arguments, predictor_from_args

SEPARATOR = "|||"
PROMPT = "you> "


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "chat",
        help="talk with the model as an empathetic listener (text, optionally with a clip)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_predictor_arguments(p)
    p.add_argument("--show-thinking", action="store_true", help="print the model's reasoning before each reply")
    p.set_defaults(func=run)


def parse_line(line: str) -> tuple[str, str | None, str | None]:
    """(command or "", argument, message text): `/clip PATH`, `/reset`, `/quit`, or `text [||| clip]`."""
    line = line.strip()
    if line.startswith("/"):
        command, _, argument = line[1:].partition(" ")
        return command.lower(), argument.strip() or None, None
    text, _, clip = line.partition(SEPARATOR)
    return "", clip.strip() or None, text.strip()


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    from nanoemox.inference import Conversation
    from nanoemox.media.errors import MediaError

    conversation = Conversation(predictor_from_args(args))
    interactive = sys.stdin.isatty()
    print("Talk to the listener; /clip PATH attaches a clip, /reset starts over, /quit leaves.", flush=True)
    pending_clip: str | None = None
    while True:
        if interactive:
            print(PROMPT, end="", flush=True)
        line = sys.stdin.readline()
        if not line:  # end of input
            return 0
        command, argument, text = parse_line(line)
        if command == "quit":
            return 0
        if command == "reset":
            conversation.reset()
            pending_clip = None
            print("(conversation cleared)", flush=True)
            continue
        if command == "clip":
            pending_clip = argument
            print(f"(clip {argument} will go with your next message)" if argument else "(no clip attached)", flush=True)
            continue
        if command:
            print(f"(unknown command /{command}; use /clip PATH, /reset or /quit)", flush=True)
            continue
        if not text:
            continue
        clip = argument or pending_clip
        pending_clip = None
        try:
            answer = conversation.send(text, clip)
        except (MediaError, ValueError, OSError) as exc:
            print(f"(could not use that message: {exc})", flush=True)
            continue
        if args.show_thinking and answer.get("think"):
            print(f"[thinking] {answer['think']}", flush=True)
        print(f"listener> {answer['reply']}", flush=True)
