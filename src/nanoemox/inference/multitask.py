"""Several tasks of one clip from one encoder pass and one shared prompt prefix.

Every task's prompt starts the same way: the modality placeholders, then the subtitle
(or, for ERG, the dialogue), and only then the task instruction. For the tasks asked
of one clip:

1. the encoders run once (the source's `features`, e.g. `Session.encode_media`);
2. the longest common prefix of the tasks' prompts runs through the language model
   once, and its KV cache is kept (`SharedClip`);
3. a closed-set task extends a copy of that cache with its own suffix (instruction and
   "###Assistant:") and ranks its candidates from there (`rank`);
4. the generating tasks decode together in one batch (`generate`): each row's suffix
   is prefilled on its own from a copy of the prefix cache, the row caches are joined
   into one with a masked gap between prefix and suffix (so no padding token is ever
   computed), and decoding runs on all rows at once. Each row is cut at its own
   budget, so the answer equals what the task would get alone.

`Session.answer_clip` drives these steps; `SharedClip` holds the prefix cache.
Answers equal task-by-task inference (tested on a tiny model, greedy and scored); the
cost of every task after the first is its suffix and its answer tokens.
Shapes: G generating rows, L prefix tokens, M longest suffix, D model width.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from transformers.cache_utils import DynamicCache

from nanoemox.model.nanoemox import MediaFeatures


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the rows' longest common prefix, leaving at least one token of each row after it."""
    limit = min(len(r) for r in rows) - 1
    length = 0
    while length < limit and all(r[length] == rows[0][length] for r in rows):
        length += 1
    return length


class SharedClip:
    """The encoder features of one clip and the KV cache of its tasks' common prompt prefix.

    `session` is the `Session` that makes it (`Session.answer_clip`), under `torch.inference_mode()` and the session's model lock.
    """

    def __init__(self, session, features: MediaFeatures, rows: Sequence[Sequence[int]]):
        self.session = session
        self.model = session.model
        self.features = features
        self.prefix = common_prefix(rows)
        device = session.device
        prefix_ids = torch.tensor([list(rows[0][: self.prefix])], device=device)  # [1, L]
        embeds = self.model.inputs_embeds(prefix_ids, features=features)  # [1, L, D]
        self.cache = self.model.language(inputs_embeds=embeds, use_cache=True).past_key_values

    def _embeds(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.inputs_embeds(ids, features=self.features.expand(ids.shape[0]))

    def rank(self, row: Sequence[int], candidates: Sequence[str], task: str) -> torch.Tensor:
        """Total log-likelihood [K] of each candidate after the row's full prompt."""
        ids = torch.tensor([list(row)], device=self.session.device)  # [1, L + S]
        suffix = self._embeds(ids)[:, self.prefix:]  # [1, S, D]
        attention = torch.ones_like(ids)
        cache = copy.deepcopy(self.cache)
        out = self.model.language(inputs_embeds=suffix, attention_mask=attention, past_key_values=cache, use_cache=True)
        return self.session.rank_candidates(out.logits[:, -1], out.past_key_values, attention, candidates, task)

    def _row_cache(self, row: Sequence[int]):
        """A copy of the prefix cache extended with the row's suffix, all but its last token."""
        cache = copy.deepcopy(self.cache)
        if len(row) - 1 > self.prefix:
            ids = torch.tensor([list(row)], device=self.session.device)  # [1, L + S]
            suffix = self._embeds(ids)[:, self.prefix : len(row) - 1]  # [1, S - 1, D]
            mask = torch.ones(1, len(row) - 1, dtype=torch.long, device=ids.device)
            self.model.language(inputs_embeds=suffix, attention_mask=mask, past_key_values=cache, use_cache=True)
        return cache

    def _batch_cache(self, rows: Sequence[Sequence[int]], longest: int):
        """One cache for all rows: prefix, then zeros where a row's suffix is shorter, then its suffix.

        Each suffix is prefilled on its own (no padded tokens are computed); the gap
        is masked out by the attention mask of `generate`.
        """
        per_row = [list(self._row_cache(row)) for row in rows]  # [(keys, values, ...) per layer] per row
        try:
            batch = DynamicCache(config=self.model.language.config)
        except TypeError:  # older transformers: no config argument
            batch = DynamicCache()
        for layer, entries in enumerate(zip(*per_row)):
            keys, values = [], []
            for row, entry in zip(rows, entries):
                gap = longest - (len(row) - self.prefix)
                for out, t in ((keys, entry[0]), (values, entry[1])):  # [1, H, L + S - 1, d]
                    pad = t.new_zeros(1, t.shape[1], gap, t.shape[3])
                    out.append(torch.cat([t[:, :, : self.prefix], pad, t[:, :, self.prefix :]], dim=2))
            batch.update(torch.cat(keys), torch.cat(values), layer)  # [G, H, L + M - 1, d]
        return batch

    def generate(self, rows: Sequence[Sequence[int]], budgets: Sequence[int], decoding: dict[str, Any]) -> torch.Tensor:
        """New tokens [G, N] of the rows, decoded together from the shared prefix."""
        pad = self.session.processor.pad_token_id
        longest = max(len(r) for r in rows) - self.prefix
        ids, mask = [], []
        for row in rows:
            suffix = list(row[self.prefix:])
            gap = longest - len(suffix)
            ids.append(list(row[: self.prefix]) + [pad] * gap + suffix)  # [L + M]
            mask.append([1] * self.prefix + [0] * gap + [1] * len(suffix))
        ids_t = torch.tensor(ids, device=self.session.device)  # [G, L + M]
        mask_t = torch.tensor(mask, device=self.session.device)
        cache = self._batch_cache(rows, longest)  # covers all but the last prompt token of every row
        config = self.model.decoding_config(max_new_tokens=max(budgets), eos_token_id=self.session.tokenizer.eos_token_id,
                                            pad_token_id=pad, **decoding)
        return self.model.language.generate(inputs_embeds=self._embeds(ids_t), attention_mask=mask_t,
                                            past_key_values=cache, generation_config=config)
