"""Tokenizers: loading the language model's tokenizer with the modality placeholders, and a tiny one.

The placeholders (one special token per modality, DESIGN section 2) are added to every
tokenizer Nano-EmoX uses. The `tiny` preset has no pretrained tokenizer, so
`build_tiny_tokenizer` trains a small byte-level BPE on a bundled text (deterministic,
milliseconds): every byte stays representable, so any subtitle can be encoded.
`build_word_tokenizer` is the stand-in backbones' tokenizer (`nanoemox.standins`): a
byte-level BPE whose merges run to the end, so every word of its texts is one token,
as common English words are in Qwen2.5's tokenizer.
"""

from __future__ import annotations

import itertools
from importlib import resources
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from nanoemox.config import MODALITIES, NanoEmoXConfig

END_OF_TEXT = "<|endoftext|>"


def add_placeholder_tokens(tokenizer: PreTrainedTokenizerBase, config: NanoEmoXConfig) -> dict[str, int]:
    """Register the modality placeholders as special tokens; return modality -> token id."""
    wanted = [config.placeholders[m] for m in MODALITIES]
    missing = [t for t in wanted if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or END_OF_TEXT
    return {m: tokenizer.convert_tokens_to_ids(config.placeholders[m]) for m in MODALITIES}


def load_tokenizer(name_or_path: str, config: NanoEmoXConfig) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a hub id or a local folder and make sure the placeholders exist."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    add_placeholder_tokens(tokenizer, config)
    return tokenizer


def _byte_level_bpe(config: NanoEmoXConfig, texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `texts` up to `vocab_size` tokens, with the end of text and the placeholders."""
    specials = [END_OF_TEXT] + [config.placeholders[m] for m in MODALITIES]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        model_max_length=config.language.max_length,
    )
    add_placeholder_tokens(tokenizer, config)
    return tokenizer


def build_tiny_tokenizer(config: NanoEmoXConfig, extra_texts: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer sized for the tiny preset's vocabulary.

    `extra_texts` (e.g. the training texts of a corpus) join the bundled text, so the
    merges fit the words the model will read, as a real tokenizer fits its corpus.
    """
    vocab_size = int(config.language.model_config.get("vocab_size", 2048))
    text = resources.files("nanoemox.resources").joinpath("tiny_tokenizer_corpus.txt").read_text("utf-8")
    tokenizer = _byte_level_bpe(config, itertools.chain(text.splitlines(), extra_texts), vocab_size)
    if len(tokenizer) > vocab_size:
        raise ValueError(f"tiny tokenizer has {len(tokenizer)} tokens, more than the LM vocabulary {vocab_size}")
    return tokenizer


def build_word_tokenizer(config: NanoEmoXConfig, texts: Iterable[str],
                         words: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A whole-word byte-level BPE fitted to `texts` and a word list.

    The merges run until no pair is left, so every word of `texts` and every entry of
    `words` is a single token, both at the start of a text (`sad`) and after a space
    (` sad`), unless the pre-tokenizer splits it (`don't` is `don` + `'t`, as in GPT-2's
    and Qwen's tokenizers); anything else still encodes byte by byte. Deterministic for
    its inputs.
    """
    words = sorted(set(words))
    # No cap on the vocabulary: the merges run to whole words.
    tokenizer = _byte_level_bpe(config, itertools.chain(texts, words, [" " + " ".join(words)]), 1 << 20)
    pre_tokenize = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str
    whole = [form for w in words for form in (w, " " + w) if len(pre_tokenize(form)) == 1]
    split = [form for form in whole if len(tokenizer(form, add_special_tokens=False)["input_ids"]) != 1]
    if split:
        raise ValueError(f"word tokenizer: {len(split)} word(s) are not single tokens, e.g. {split[:5]}")
    return tokenizer
