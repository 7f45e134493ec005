"""A tiny randomly initialised BERT encoder written as a ``save_pretrained`` folder: what the
transformer family's tests fine-tune instead of a downloaded model (no network, seconds on a CPU)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PIECES = ["##s", "##ly", "##ed", "##ing", "!", ",", ".", "?", "'"]


def write_tiny_encoder(folder: Path, words: Iterable[str], hidden: int = 32, layers: int = 2, seed: int = 0,
                       dropout: float = 0.1) -> Path:
    """A BERT of ``layers`` layers and ``hidden`` units whose vocabulary holds ``words``, a few
    word pieces and the letters (any word tokenizes), with ``dropout`` in its layers."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({*words, "good", "bad", "ok"})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocabulary = {piece: i for i, piece in enumerate(dict.fromkeys(
        SPECIAL + words + PIECES + letters + [f"##{c}" for c in letters]))}
    BertTokenizer(vocab=vocabulary, do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocabulary), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(folder)
    return folder
