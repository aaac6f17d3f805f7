"""Builds a word-level tokenizer whose vocabulary covers a model's, for serving dummy weights.

The lab model and the GPU validation model have no real weights (vLLM's `load_format: dummy`),
so any tokenizer that maps text to ids below `vocab_size` serves them. Words `t0..tN` and the
special tokens make requests and `ignore_eos` generation behave as with a real tokenizer.

Standard library only: it writes the `tokenizers` library's JSON format (a WordLevel model with a
Whitespace pre-tokenizer) directly, so any Python 3 runs it, on the GPU host as well:
    python scripts/build_tokenizer.py --vocab-size 4096 --out files/models/classroom-tiny
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<s>' + m['role'] + ' ' + m['content'] + ' </s> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<s>assistant ' }}{% endif %}"
)


def tokenizer_json(vocab_size: int) -> str:
    """tokenizer.json as `tokenizers.Tokenizer.save` writes it for this word-level model."""
    words = [*SPECIALS, *(f"t{i}" for i in range(vocab_size - len(SPECIALS)))]
    doc: dict[str, object] = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate(words)}, "unk_token": "<unk>"},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def build(vocab_size: int, out: Path) -> None:
    if vocab_size <= len(SPECIALS):
        raise SystemExit(f"--vocab-size must be larger than {len(SPECIALS)} (the special tokens)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(tokenizer_json(vocab_size))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "model_max_length": 1_000_000,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(
        json.dumps({k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}, indent=2) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    build(args.vocab_size, args.out)


if __name__ == "__main__":
    main()
