"""`nanoemox serve`: the HTTP service (FastAPI + uvicorn) with its web page.

    nanoemox serve --model DIR --host 127.0.0.1 --port 8000

Then open http://127.0.0.1:8000/ to upload a clip, or see /docs for the API. OpenAI clients
use http://127.0.0.1:8000/v1 as their base URL (chat completions with video, image and audio).
Live analysis (the page's Live view, `nanoemox live`) uses ws://127.0.0.1:8000/v1/live.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nanoemox.cli.options import UsageError, add_predictor_arguments, predictor_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the model over HTTP with a web page", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_predictor_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted clip in MiB (default 200)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a request may take before 504 (default 300)")
    p.add_argument("--concurrency", type=int, default=1, help="model calls at once (default 1); others wait")
    p.add_argument("--queue-timeout", type=float, default=10.0, help="seconds a request waits for a free slot before 503")
    p.add_argument("--max-timeline-minutes", type=float, default=60.0,
                   help="longest video /v1/timeline accepts, in minutes (default 60)")
    p.add_argument("--tmp-dir", default=None, help="folder for uploads while they are answered (default: system temp)")
    p.add_argument("--served-model-name", default=None,
                   help="the model's id in /v1/models and chat completions (default: the model folder's name)")
    p.add_argument("--allowed-local-media-path", default=None, metavar="FOLDER",
                   help="let chat completions read file:// media under FOLDER (default: no local files)")
    p.add_argument("--allow-remote-media", action="store_true",
                   help="let chat completions fetch http(s) media URLs (within the upload limit and "
                        "--remote-media-timeout); off by default")
    p.add_argument("--remote-media-timeout", type=float, default=30.0,
                   help="seconds to fetch one remote media URL (default 30)")
    p.add_argument("--max-live-minutes", type=float, default=60.0,
                   help="a live session ends after this many minutes (default 60)")
    p.add_argument("--live-idle-timeout", type=float, default=15.0,
                   help="seconds without a message before a live session is closed (default 15)")
    p.set_defaults(func=run)


def build_app(args):
    """The FastAPI app `serve` runs, from its options (raises UsageError for a bad --model)."""
    # imported when the command runs, not at every start of the command line
    from nanoemox.serve import ServeSettings, create_app

    predictor = predictor_from_args(args)
    settings = ServeSettings(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        request_timeout=args.timeout,
        max_concurrency=args.concurrency,
        queue_timeout=args.queue_timeout,
        max_timeline_seconds=args.max_timeline_minutes * 60.0,
        timeline_batch_size=args.batch_size,
        # Absolute, like every path the command was given: uploads go where the user meant.
        tmp_dir=str(Path(args.tmp_dir).expanduser().resolve()) if args.tmp_dir else None,
        allowed_local_media_path=_folder(args.allowed_local_media_path),
        allow_remote_media=args.allow_remote_media,
        remote_media_timeout=args.remote_media_timeout,
        max_live_seconds=args.max_live_minutes * 60.0,
        live_idle_timeout=args.live_idle_timeout,
    )
    # The folder's own name, also for `--model .` (whose Path.name is empty).
    name = args.served_model_name or Path(args.model).expanduser().resolve().name
    return create_app(predictor, settings, model_name=name)


def _folder(path: str | None) -> str | None:
    """An existing folder as an absolute path; UsageError otherwise."""
    if path is None:
        return None
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise UsageError(f"--allowed-local-media-path {path}: not a folder")
    return str(folder)


def run(args) -> int:
    # imported when the command runs, not at every start of the command line
    import uvicorn

    app = build_app(args)
    print(f"serving {args.model} on http://{args.host}:{args.port}/ (API description: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
