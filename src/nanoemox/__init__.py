"""Nano-EmoX: one compact multimodal language model for six affective tasks.

The package is a library: model (`nanoemox.model`), media pipeline (`nanoemox.media`),
tasks and prompts (`nanoemox.tasks`), data (`nanoemox.data`) and metrics
(`nanoemox.metrics`). The command line lives apart, in `nanoemox.cli`.
"""

__version__ = "0.1.0"
