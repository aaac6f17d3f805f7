"""Builds a word-level tokenizer whose vocabulary covers a model's, for serving dummy weights.

The lab model and the GPU validation model have no real weights (vLLM's `load_format: dummy`),
so any tokenizer that maps text to ids below `vocab_size` serves them. Words `t0..tN` and the
special tokens make requests and `ignore_eos` generation behave as with a real tokenizer.

Run with a Python that has the `tokenizers` package (the vLLM environment has it):
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


def build(vocab_size: int, out: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: PLC0415 - only the vLLM venv has it

    words = [*SPECIALS, *(f"t{i}" for i in range(vocab_size - len(SPECIALS)))]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
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
