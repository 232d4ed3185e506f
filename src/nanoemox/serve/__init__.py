"""HTTP service of Nano-EmoX: a FastAPI app (`create_app`) with its limits and a small web page."""

from nanoemox.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
