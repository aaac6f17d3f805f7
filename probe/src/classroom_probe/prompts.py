"""Prompts: a built-in classroom set, or a JSONL file."""

import json
from dataclasses import dataclass
from pathlib import Path

from classroom_probe.errors import BadInput
from classroom_probe.inputs import MIB, read_text

MAX_PROMPTS_BYTES = 64 * MIB

BUILTIN = (
    "Explain photosynthesis to a twelve-year-old in a short paragraph.",
    "Write a Python function that returns the n-th Fibonacci number, with a docstring.",
    "What caused the First World War? Give three causes.",
    "Summarise the water cycle in five bullet points.",
    "Translate 'Good morning, class. Please open your books.' into French and Spanish.",
    "Why is the sky blue? Answer like a physics teacher.",
    "Give me a ten-word sentence using the word 'ephemeral'.",
    "Solve 3x + 7 = 22 and show each step.",
    "List four differences between mitosis and meiosis.",
    "Write a haiku about homework.",
    "What is the difference between a list and a tuple in Python?",
    "Describe the main idea of Newton's second law with an everyday example.",
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt as text (completions, Ollama, or one user message for chat) or as chat messages."""

    text: str
    messages: tuple[dict[str, str], ...] | None = None
    max_tokens: int | None = None


def builtin_prompts() -> list[Prompt]:
    return [Prompt(text=t) for t in BUILTIN]


def load_prompts(path: Path, field: str = "--prompts") -> list[Prompt]:
    """Each line: {"prompt": str} or {"messages": [{"role", "content"}...]}, optional "max_tokens"."""
    lines = read_text(path, field, MAX_PROMPTS_BYTES).splitlines()
    out: list[Prompt] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(field, f"line {number}: not JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise BadInput(field, f"line {number}: nests too deeply") from exc
        if not isinstance(obj, dict):
            raise BadInput(field, f"line {number}: expected a JSON object")
        out.append(_prompt(obj, number, field))
    if not out:
        raise BadInput(field, f"{path} holds no prompts")
    return out


def _prompt(obj: dict[str, object], number: int, field: str) -> Prompt:
    unknown = set(obj) - {"prompt", "messages", "max_tokens"}
    if unknown:
        raise BadInput(field, f"line {number}: unknown keys {', '.join(sorted(unknown))}")
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise BadInput(field, f"line {number}: max_tokens must be a positive integer")
    text = obj.get("prompt")
    messages = obj.get("messages")
    if isinstance(text, str) and text and messages is None:
        return Prompt(text=text, max_tokens=max_tokens)
    if text is None and isinstance(messages, list) and messages:
        parsed: list[dict[str, str]] = []
        for m in messages:
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                raise BadInput(field, f"line {number}: each message needs string 'role' and 'content'")
            parsed.append({"role": m["role"], "content": m["content"]})
        # Non-chat APIs get the messages' contents joined, so one file serves every API.
        joined = "\n".join(m["content"] for m in parsed)
        return Prompt(text=joined, messages=tuple(parsed), max_tokens=max_tokens)
    raise BadInput(field, f"line {number}: needs exactly one of a non-empty 'prompt' string or 'messages' list")
