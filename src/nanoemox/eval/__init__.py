"""Evaluation: emotion-word extraction, the LLM client and EMER judge, and prediction scoring.

Modules: `extract` (free text -> emotion words), `llm` (OpenAI-compatible client with
retries and a reply cache, prompt templates), `judge` (EMER Clue / Label Overlap),
`scoring` (predictions JSONL -> benchmark tables), `harness` (model + benchmark ->
resumable predictions, scores, tables; `nanoemox eval`), `plots` (closed-set
confusion matrices), `testing` (a loopback fake server). This package file stays
light: the CLI imports it on every start.
"""

BENCHMARKS = ("mer-unibench", "emer", "mintrec", "mintrec2", "avamerg", "synthaffect")
DEFAULT_API_KEY_ENV = "NANOEMOX_LLM_API_KEY"
