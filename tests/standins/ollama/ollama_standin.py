#!/usr/bin/python3
"""TEST STAND-IN for Ollama: not Ollama, serves no model. Lab and tests only.

Ollama's binary cannot run on the lab box, so this script is installed in its place as
/usr/local/bin/ollama and behaves, for the subset of the API the project touches, the way
Ollama 0.33 does (facts: the project's reference on Ollama):

  ollama serve        the server, configured by OLLAMA_HOST, OLLAMA_MODELS, OLLAMA_NUM_PARALLEL,
                      OLLAMA_MAX_QUEUE, OLLAMA_KEEP_ALIVE and OLLAMA_NOPRUNE
  ollama --version    "ollama version is 0.33.0" (asks the server named by OLLAMA_HOST)

Endpoints: / and HEAD /, /api/version, /api/tags (rescans the manifests on every call: digest =
sha256 of the manifest's bytes, modified_at = its mtime, newest first), /api/ps, /api/generate and
/api/chat (NDJSON, or one object with "stream": false), /v1/models, /v1/chat/completions and
/v1/completions (SSE, usage chunk with stream_options.include_usage), with Ollama's error bodies.
Generation is a fixed word list at a fixed pace; requests for one model run OLLAMA_NUM_PARALLEL at
a time (default 1) and queue behind each other, at most OLLAMA_MAX_QUEUE waiting (then 503).
At start, unless OLLAMA_NOPRUNE is set, unreferenced blobs older than one hour and *-partial*
files are deleted, as `ollama serve` does; a store with an unreadable manifest is not pruned.
Standard library only, so the box's own python3 runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

VERSION = "0.33.0"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
PRUNE_GRACE_S = 3600
BUSY = "server busy, please try again.  maximum pending requests exceeded"
WORDS = [
    "The", "quick", "answer", "is", "that", "a", "shared", "server", "batches", "every", "student's",
    "request", "so", "the", "GPUs", "stay", "busy", "and", "nobody", "waits", "for", "a", "whole", "model",
    "copy", "to", "be", "free", ".",
]
_BLOB_NAME = re.compile(r"^sha256-[0-9a-f]{64}$")
_DURATION = re.compile(r"^(?P<n>-?[0-9.]+)(?P<unit>ns|us|ms|s|m|h)?$")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def log(level: str, msg: str, **attrs: object) -> None:
    """One line in Ollama's slog text format, on stderr (the journal)."""
    stamp = datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")
    extra = "".join(f" {k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}" for k, v in attrs.items())
    print(f'time={stamp} level={level} source=standin msg="{msg}"{extra}', file=sys.stderr, flush=True)


# --- Settings from the environment ------------------------------------------------------------------


def parse_host(value: str) -> tuple[str, str, int]:
    """OLLAMA_HOST as envconfig.Host reads it: scheme, host ('' = every address), port."""
    raw = value.strip()
    scheme, sep, hostport = raw.partition("://")
    default_port = 11434
    if not sep:
        scheme, hostport = "http", raw
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport = hostport.split("/", 1)[0]
    host, port_text = _split_host_port(hostport)
    if port_text is None:
        host = hostport.strip("[]") if hostport else "127.0.0.1"
        port_text = str(default_port)
    try:
        port = int(port_text)
    except ValueError:
        return "http", "127.0.0.1", 11434
    if not 0 <= port <= 65535:
        return "http", "127.0.0.1", 11434
    return scheme, host, port


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end > 0 and hostport[end + 1 : end + 2] == ":":
            return hostport[1:end], hostport[end + 2 :]
        return hostport, None
    if hostport.count(":") == 1:
        host, port = hostport.split(":")
        return host, port
    return hostport, None


def env_bool(name: str) -> bool:
    """Ollama's envconfig.Bool: set and not a false value."""
    raw = os.environ.get(name, "").strip().strip("'\"")
    if not raw:
        return False
    return raw.lower() not in ("0", "false", "f", "no", "off")


def parse_duration_s(raw: str, default: float) -> float:
    """OLLAMA_KEEP_ALIVE: a Go duration or a number of seconds; negative keeps the model forever."""
    match = _DURATION.match(raw.strip())
    if not raw.strip() or not match:
        return default
    value = float(match.group("n")) * _UNIT_S[match.group("unit")]
    return float("inf") if value < 0 else value


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    models: Path
    num_parallel: int
    max_queue: int
    keep_alive_s: float
    noprune: bool
    first_token_s: float
    token_s: float

    @classmethod
    def from_env(cls) -> Settings:
        _, host, port = parse_host(os.environ.get("OLLAMA_HOST", ""))
        home = Path(os.environ.get("HOME", "/usr/share/ollama"))
        models = Path(os.environ.get("OLLAMA_MODELS") or home / ".ollama" / "models")
        return cls(
            host=host,
            port=port,
            models=models,
            num_parallel=max(1, _env_int("OLLAMA_NUM_PARALLEL", 1)),
            max_queue=max(1, _env_int("OLLAMA_MAX_QUEUE", 512)),
            keep_alive_s=parse_duration_s(os.environ.get("OLLAMA_KEEP_ALIVE", ""), 300.0),
            noprune=env_bool("OLLAMA_NOPRUNE"),
            # The stand-in's own pace (not Ollama settings): first token and each further token.
            first_token_s=_env_int("STANDIN_FIRST_TOKEN_MS", 20) / 1000,
            token_s=_env_int("STANDIN_TOKEN_MS", 5) / 1000,
        )


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


# --- Model names and the store ----------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> Name | None:
        """types/model.ParseName with the defaults filled in; None when it is not a model name."""
        raw = text.split("@", 1)[0].strip()
        if not raw:
            return None
        tag = DEFAULT_TAG
        colon = raw.rfind(":")
        if colon > raw.rfind("/"):
            raw, tag = raw[:colon], raw[colon + 1 :]
        parts = raw.split("/")
        if len(parts) == 1:
            host, namespace, model = DEFAULT_HOST, DEFAULT_NAMESPACE, parts[0]
        elif len(parts) == 2:
            host, namespace, model = DEFAULT_HOST, parts[0], parts[1]
        elif len(parts) == 3:
            host, namespace, model = parts
        else:
            return None
        if not all((host, namespace, model, tag)):
            return None
        return cls(host, namespace, model, tag)

    def key(self) -> tuple[str, str, str, str]:
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    def shortest(self) -> str:
        """DisplayShortest: the default host and namespace are left out."""
        if self.host.lower() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        else:
            prefix = ""
        return f"{prefix}{self.model}:{self.tag}"


@dataclass(frozen=True)
class Model:
    name: Name
    digest: str
    size: int
    modified_ns: int
    details: dict[str, Any]
    layers: tuple[str, ...]

    def go_time(self) -> str:
        return go_rfc3339(self.modified_ns)


def go_rfc3339(ns: int) -> str:
    """Go's time.Time in JSON (RFC 3339 with nanoseconds, trailing zeros dropped), in UTC."""
    seconds, rem = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f".{rem:09d}".rstrip("0") if rem else ""
    return f"{base}{frac}Z"


def blob_path(models: Path, digest: str) -> Path:
    return models / "blobs" / digest.replace(":", "-", 1)


def manifest_files(models: Path) -> Iterator[Path]:
    root = models / "manifests"
    # Exactly four levels: <host>/<namespace>/<model>/<tag>.
    yield from sorted(p for p in root.glob("*/*/*/*") if p.is_file())


def read_manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    obj = json.loads(data)
    if not isinstance(obj, dict) or not isinstance(obj.get("layers", []), list):
        raise ValueError(f"{path}: not a manifest")
    return obj, data


def list_models(models: Path) -> list[Model]:
    """/api/tags: every readable manifest whose config blob parses, newest first."""
    found: list[Model] = []
    for path in manifest_files(models):
        rel = path.relative_to(models / "manifests").parts
        name = Name(*rel)
        try:
            obj, data = read_manifest(path)
        except (OSError, ValueError) as exc:
            log("WARN", "skipping file", name=name.shortest(), error=str(exc))
            continue
        config = obj.get("config") or {}
        details: dict[str, Any] = {}
        if config.get("digest"):
            try:
                details = json.loads(blob_path(models, config["digest"]).read_bytes())
            except (OSError, ValueError) as exc:
                log("WARN", "bad manifest config", name=name.shortest(), error=str(exc))
                continue
        layers = [layer for layer in obj.get("layers", []) if isinstance(layer, dict)]
        size = sum(int(item.get("size", 0)) for item in [*layers, config])
        found.append(
            Model(
                name=name,
                digest=hashlib.sha256(data).hexdigest(),
                size=size,
                modified_ns=path.stat().st_mtime_ns,
                details={
                    "parent_model": "",
                    "format": details.get("model_format", ""),
                    "family": details.get("model_family", ""),
                    "families": details.get("model_families"),
                    "parameter_size": details.get("model_type", ""),
                    "quantization_level": details.get("file_type", ""),
                },
                layers=tuple(str(layer.get("digest", "")) for layer in [*layers, config]),
            )
        )
    # Go sorts on whole seconds, stable: equal seconds keep the walk's order.
    found.sort(key=lambda m: m.modified_ns // 1_000_000_000, reverse=True)
    return found


def prune(models: Path, now: float | None = None) -> list[str]:
    """What `ollama serve` deletes at start; returns the removed file names."""
    blobs = models / "blobs"
    if not blobs.is_dir():
        return []
    referenced: set[str] = set()
    for path in manifest_files(models):
        try:
            obj, _ = read_manifest(path)
        except (OSError, ValueError) as exc:
            log("WARN", "corrupt manifests detected, skipping prune operation.  Re-pull or delete to clear",
                error=str(exc))
            return []
        for item in [*(obj.get("layers") or []), obj.get("config") or {}]:
            if isinstance(item, dict) and item.get("digest"):
                referenced.add(str(item["digest"]).replace(":", "-", 1))
    cutoff = (time.time() if now is None else now) - PRUNE_GRACE_S
    removed = []
    for blob in sorted(blobs.iterdir()):
        unused = _BLOB_NAME.match(blob.name) and blob.name not in referenced and blob.stat().st_mtime < cutoff
        if "-partial" in blob.name or unused:
            blob.unlink()
            removed.append(blob.name)
    log("INFO", "total blobs: " + str(len(list(blobs.iterdir())) + len(removed)))
    log("INFO", "total unused blobs removed: " + str(len(removed)))
    return removed


def ensure_keypair(home: Path) -> None:
    """Ollama creates ~/.ollama/id_ed25519 at first start; the stand-in writes a labelled fake."""
    folder = home / ".ollama"
    key = folder / "id_ed25519"
    if key.exists():
        return
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        seed = hashlib.sha256(os.urandom(32)).hexdigest()
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n"
                       f"STAND-IN-NOT-A-KEY-{seed}\n-----END OPENSSH PRIVATE KEY-----\n")
        key.chmod(0o600)
        (folder / "id_ed25519.pub").write_text(f"ssh-ed25519 STAND-IN-{seed[:32]}\n")


# --- The server -------------------------------------------------------------------------------------


@dataclass
class Loaded:
    model: Model
    expires: float


@dataclass
class State:
    settings: Settings
    lock: threading.Lock = field(default_factory=threading.Lock)
    slots: dict[tuple[str, str, str, str], threading.Semaphore] = field(default_factory=dict)
    waiting: int = 0
    loaded: dict[tuple[str, str, str, str], Loaded] = field(default_factory=dict)
    counter: int = 0

    def find(self, requested: str) -> Model | None:
        name = Name.parse(requested)
        if name is None:
            return None
        return next((m for m in list_models(self.settings.models) if m.name.key() == name.key()), None)

    def enter(self, model: Model) -> threading.Semaphore | None:
        """A slot for the model after waiting in the queue; None when OLLAMA_MAX_QUEUE are already waiting."""
        with self.lock:
            slot = self.slots.setdefault(model.name.key(), threading.Semaphore(self.settings.num_parallel))
            if slot.acquire(blocking=False):
                return slot
            if self.waiting >= self.settings.max_queue:
                return None
            self.waiting += 1
        slot.acquire()
        with self.lock:
            self.waiting -= 1
        return slot

    def leave(self, slot: threading.Semaphore) -> None:
        slot.release()

    def load(self, model: Model) -> int:
        """Marks the model loaded until keep-alive ends; the load time in ns (longer the first time)."""
        with self.lock:
            first = model.name.key() not in self.loaded
            self.loaded[model.name.key()] = Loaded(model, time.time() + self.settings.keep_alive_s)
            self.counter += 1
        return 50_000_000 if first else 1_000_000

    def running(self) -> list[Loaded]:
        now = time.time()
        with self.lock:
            for key in [k for k, v in self.loaded.items() if v.expires < now]:
                del self.loaded[key]
            return list(self.loaded.values())

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter


def model_entry(m: Model) -> dict[str, Any]:
    return {
        "name": m.name.shortest(),
        "model": m.name.shortest(),
        "modified_at": m.go_time(),
        "size": m.size,
        "digest": m.digest,
        "details": m.details,
    }


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    settings = state.settings

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ollama-standin"

        def log_message(self, format: str, *args: object) -> None:
            return  # Ollama logs one GIN line per request; the journal does without them here

        # -- plumbing --

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: object) -> None:
            self._send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json; charset=utf-8")

        def _error(self, status: int, message: str, openai: bool) -> None:
            if openai:
                kind = {404: "not_found_error", 400: "invalid_request_error"}.get(status, "api_error")
                self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})
            else:
                self._json(status, {"error": message})

        def _start_stream(self, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _chunk(self, payload: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def _end_stream(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _body(self, openai: bool) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                self._error(400, "missing request body", openai)
                return None
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                self._error(400, f"invalid character in request body: {exc}", openai)
                return None
            if not isinstance(obj, dict):
                self._error(400, "request body must be a JSON object", openai)
                return None
            return obj

        # -- routes --

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
            elif path == "/api/version":
                self._json(200, {"version": VERSION})
            elif path == "/api/tags":
                self._json(200, {"models": [model_entry(m) for m in list_models(settings.models)]})
            elif path == "/api/ps":
                self._json(200, {"models": [self._ps_entry(item) for item in state.running()]})
            elif path == "/v1/models":
                models = list_models(settings.models)
                data = [
                    {
                        "id": m.name.shortest(),
                        "object": "model",
                        "created": m.modified_ns // 1_000_000_000,
                        "owned_by": m.name.namespace,
                    }
                    for m in models
                ]
                self._json(200, {"object": "list", "data": data or None})
            else:
                self._send(404, b"404 page not found", "text/plain")

        def _ps_entry(self, item: Loaded) -> dict[str, Any]:
            entry = model_entry(item.model)
            del entry["modified_at"]
            expires = item.expires if item.expires != float("inf") else time.time() + 10 * 365 * 86400
            entry["expires_at"] = go_rfc3339(int(expires * 1e9))
            # No GPU behind the stand-in: like Ollama on a CPU-only host, nothing is in VRAM.
            entry["size_vram"] = 0
            entry["context_length"] = 4096
            return entry

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            routes = {
                "/api/generate": ("native", "generate"),
                "/api/chat": ("native", "chat"),
                "/v1/chat/completions": ("openai", "chat"),
                "/v1/completions": ("openai", "completions"),
            }
            if path not in routes:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(404, b"404 page not found", "text/plain")
                return
            flavour, kind = routes[path]
            openai = flavour == "openai"
            body = self._body(openai)
            if body is None:
                return
            requested = body.get("model")
            if not isinstance(requested, str) or not requested:
                self._error(400, "model is required", openai)
                return
            model = state.find(requested)
            if model is None:
                self._error(404, f"model '{requested}' not found", openai)
                return
            slot = state.enter(model)
            if slot is None:
                self._error(503, BUSY, openai)
                return
            try:
                load_ns = state.load(model)
                if openai:
                    self._openai(body, requested, kind, load_ns)
                else:
                    self._native(body, requested, kind, load_ns)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client went away; Ollama cancels the request the same way
            finally:
                state.leave(slot)

        # -- generation --

        def _plan(self, limit: object) -> tuple[list[str], str]:
            n = int(limit) if isinstance(limit, int | float) and not isinstance(limit, bool) else -1
            if 0 < n < len(WORDS):
                return [f"{w} " for w in WORDS[:n]], "length"
            return [f"{w} " for w in WORDS], "stop"

        def _pieces(self, pieces: list[str]) -> Iterator[str]:
            time.sleep(settings.first_token_s)
            for i, piece in enumerate(pieces):
                if i:
                    time.sleep(settings.token_s)
                yield piece

        def _native(self, body: dict[str, Any], requested: str, kind: str, load_ns: int) -> None:
            options = body.get("options") if isinstance(body.get("options"), dict) else {}
            assert isinstance(options, dict)
            prompt = body.get("prompt", "") if kind == "generate" else json.dumps(body.get("messages", []))
            if kind == "generate" and not prompt:
                # An empty prompt only loads the model.
                self._json(200, {"model": requested, "created_at": go_rfc3339(time.time_ns()), "response": "",
                                 "done": True, "done_reason": "load"})
                return
            pieces, reason = self._plan(options.get("num_predict"))
            prompt_tokens = max(1, len(str(prompt).split()))
            stream = body.get("stream", True) is not False
            started = time.perf_counter_ns()
            text = []
            if stream:
                self._start_stream("application/x-ndjson")
            for piece in self._pieces(pieces):
                text.append(piece)
                if stream:
                    line: dict[str, Any] = {"model": requested, "created_at": go_rfc3339(time.time_ns())}
                    line.update({"response": piece} if kind == "generate"
                                else {"message": {"role": "assistant", "content": piece}})
                    line["done"] = False
                    self._chunk(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            total = time.perf_counter_ns() - started + load_ns
            final: dict[str, Any] = {"model": requested, "created_at": go_rfc3339(time.time_ns())}
            content = "" if stream else "".join(text)
            final.update({"response": content} if kind == "generate"
                         else {"message": {"role": "assistant", "content": content}})
            final.update({"done": True, "done_reason": reason})
            if kind == "generate":
                final["context"] = list(range(1, prompt_tokens + len(pieces) + 1))
            final.update({
                "total_duration": total,
                "load_duration": load_ns,
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": 2_000_000,
                "eval_count": len(pieces),
                "eval_duration": max(1, total - load_ns - 2_000_000),
            })
            if stream:
                self._chunk(json.dumps(final, separators=(",", ":")).encode() + b"\n")
                self._end_stream()
            else:
                self._json(200, final)

        def _openai(self, body: dict[str, Any], requested: str, kind: str, load_ns: int) -> None:
            chat = kind == "chat"
            pieces, reason = self._plan(body.get("max_tokens"))
            prompt = json.dumps(body.get("messages", [])) if chat else str(body.get("prompt", ""))
            prompt_tokens = max(1, len(prompt.split()))
            opts = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
            assert isinstance(opts, dict)
            include_usage = bool(opts.get("include_usage"))
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces),
                     "total_tokens": prompt_tokens + len(pieces)}
            ident = f"{'chatcmpl' if chat else 'cmpl'}-{state.next_id()}"
            created = int(time.time())
            head = {"id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": created, "model": requested, "system_fingerprint": "fp_ollama"}
            if body.get("stream") is not True:
                text = "".join(self._pieces(pieces))
                choice: dict[str, Any] = {"index": 0, "finish_reason": reason}
                if chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                self._json(200, {**head, "object": "chat.completion" if chat else "text_completion",
                                 "choices": [choice], "usage": usage})
                return
            self._start_stream("text/event-stream")
            for piece in self._pieces(pieces):
                if chat:
                    choice = {"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}
                else:
                    choice = {"text": piece, "index": 0, "finish_reason": None}
                event: dict[str, Any] = {**head, "choices": [choice]}
                if include_usage and not chat:
                    # Ollama's quirk on /v1/completions: every content chunk carries a zero usage.
                    event["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
                self._sse(event)
            last = ({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": reason} if chat
                    else {"text": "", "index": 0, "finish_reason": reason})
            self._sse({**head, "choices": [last]})
            if include_usage:
                self._sse({**head, "choices": [], "usage": usage})
            self._chunk(b"data: [DONE]\n\n")
            self._end_stream()

        def _sse(self, event: dict[str, Any]) -> None:
            self._chunk(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: Settings) -> None:
        self.address_family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        self.state = State(settings)
        super().__init__((settings.host, settings.port), make_handler(self.state))


def serve(settings: Settings) -> None:
    ensure_keypair(Path(os.environ.get("HOME", "/usr/share/ollama")))
    (settings.models / "blobs").mkdir(parents=True, exist_ok=True)
    (settings.models / "manifests").mkdir(parents=True, exist_ok=True)
    if settings.noprune:
        log("INFO", "OLLAMA_NOPRUNE is set: blobs are not pruned")
    else:
        prune(settings.models)
    server = Server(settings)
    shown = settings.host or "[::]"
    log("INFO", f"Listening on {shown}:{settings.port} (version {VERSION}, test stand-in)")
    log("INFO", "inference compute", id="cpu", library="cpu", parallel=settings.num_parallel)
    server.serve_forever()


def version() -> int:
    scheme, host, port = parse_host(os.environ.get("OLLAMA_HOST", ""))
    target = "127.0.0.1" if host in ("", "0.0.0.0") else ("[::1]" if host == "::" else host)
    try:
        with urlopen(f"{scheme}://{target}:{port}/api/version", timeout=3) as resp:
            print(f"ollama version is {json.loads(resp.read())['version']}")
            return 0
    except (URLError, OSError, ValueError, KeyError):
        print("Warning: could not connect to a running Ollama instance")
        print(f"Warning: client version is {VERSION}")
        return 0


def main(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-v"], ["version"]):
        return version()
    if argv[:1] == ["serve"]:
        serve(Settings.from_env())
        return 0
    print("Usage:\n  ollama serve | ollama --version\n(test stand-in: other commands are not provided)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
