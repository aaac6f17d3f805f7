"""An existing HAProxy config: which parts serve Ollama, and the config data that retires them.

The box's config was written by hand. It is read into sections, the backends whose servers are
Ollama instances are found, and the result is data for the `gateway` role (the one writer of the
HAProxy config): the admin's global and defaults lines, every section that has nothing to do with
Ollama kept as it was, and the frontends that served Ollama either re-pointed at the successor
(OpenAI-compatible /v1 to it, Ollama-native /api/ answered by HAProxy with an error naming the
new address) or removed. The original text stays in the archive; a rollback installs it verbatim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.ollama_archive_units import OllamaHost, split_host_port

SECTIONS = {
    "global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist", "program",
    "http-errors", "ring", "cache", "mailers", "log-forward", "crt-store", "traces",
}
# Keywords that only make sense in a backend: dropped when a listen section becomes a frontend.
_BACKEND_ONLY = {"server", "server-template", "default-server", "balance", "hash-type", "http-check", "cookie"}
RETIRED_STATUS = 410
STREAMING = "option http-no-delay"


@dataclass
class Section:
    kind: str  # '' for the lines before the first section
    name: str
    header: str
    lines: list[str] = field(default_factory=list)

    def directives(self) -> list[tuple[str, str, str]]:
        """(keyword, arguments, original line) of every non-comment line."""
        out = []
        for line in self.lines:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            keyword, _, args = stripped.partition(" ")
            out.append((keyword, args.strip(), line))
        return out

    def text(self) -> str:
        body = "".join(line if line.endswith("\n") else line + "\n" for line in self.lines)
        return (self.header.rstrip("\n") + "\n" if self.header else "") + body


@dataclass(frozen=True)
class Server:
    section: str
    name: str
    address: str
    port: int | None


def parse(text: str) -> list[Section]:
    sections = [Section("", "", "")]
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        keyword, _, rest = stripped.partition(" ")
        if line[:1] not in (" ", "\t") and keyword in SECTIONS:
            sections.append(Section(keyword, rest.split("#", 1)[0].strip().split(" ")[0] if rest else "", line))
        else:
            sections[-1].lines.append(line)
    return sections


def servers(section: Section) -> list[Server]:
    found = []
    for keyword, args, _ in section.directives():
        if keyword != "server":
            continue
        words = args.split()
        if len(words) < 2:
            continue
        address = words[1].split("@", 1)[-1]  # ipv4@ / ipv6@ prefixes
        host, port = split_host_port(address)
        found.append(Server(section.name, words[0], host, int(port) if port and port.isdigit() else None))
    return found


def is_ollama(server: Server, instances: list[OllamaHost]) -> bool:
    return server.port is not None and any(i.serves(server.address, server.port) for i in instances)


def _backend_refs(args: str) -> str:
    return args.split(maxsplit=1)[0] if args.split() else ""


@dataclass
class Retirement:
    ollama_backends: list[str] = field(default_factory=list)
    mixed_backends: list[str] = field(default_factory=list)
    ollama_frontends: list[str] = field(default_factory=list)
    ollama_servers: list[dict[str, Any]] = field(default_factory=list)
    frontend_binds: list[str] = field(default_factory=list)
    gateway: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ollama_backends": self.ollama_backends,
            "mixed_backends": self.mixed_backends,
            "ollama_frontends": self.ollama_frontends,
            "ollama_servers": self.ollama_servers,
            "frontend_binds": self.frontend_binds,
            "gateway": self.gateway,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class Successor:
    """What replaces Ollama behind the students' address."""

    action: str  # repoint or remove
    backend: str
    address: str
    url: str
    model: str


def retired_message(successor_url: str, model: str) -> str:
    example = f" with model {model}" if model else ""
    return (f"Ollama was retired on this box. Use the OpenAI-compatible API at {successor_url} "
            f"(for example POST {successor_url.rstrip('/')}/chat/completions{example}).")


def retire(text: str, instances: list[OllamaHost], successor: Successor) -> Retirement:
    """Config data for the gateway role with Ollama's backends gone and its frontends re-pointed or removed."""
    sections = parse(text)
    plan = Retirement()
    _classify(sections, instances, plan)
    backends = {s.name for s in sections if s.kind == "backend"}
    if successor.action == "repoint" and successor.backend in backends - set(plan.ollama_backends):
        plan.problems.append(f"the HAProxy config already has a backend named {successor.backend}: set "
                             "ollama_archive_successor_backend to a free name")
    builder = _Builder(plan, instances, successor,
                       json.dumps({"error": retired_message(successor.url, successor.model)}, separators=(",", ":")),
                       next((s for s in sections if s.kind == "defaults" and not s.name), None))
    for section in sections:
        builder.place(section)
    gateway = builder.gateway
    if successor.action == "repoint" and gateway["frontends"]:
        gateway["backends"].append({
            "name": successor.backend,
            "mode": "http",
            "lines": [],
            "servers": [{"name": successor.backend, "address": successor.address, "options": "check"}],
        })
    plan.gateway = gateway
    return plan


def _classify(sections: list[Section], instances: list[OllamaHost], plan: Retirement) -> None:
    """Which backends, servers and frontends serve Ollama."""
    for section in sections:
        if section.kind not in ("backend", "listen"):
            continue
        hits = [srv for srv in servers(section) if is_ollama(srv, instances)]
        plan.ollama_servers += [{"section": f"{section.kind} {section.name}", "name": s.name,
                                 "address": f"{s.address}:{s.port}"} for s in hits]
        # A backend with only Ollama servers goes; one with other servers too only loses those lines.
        if hits and section.kind == "backend":
            whole = len(hits) == len(servers(section))
            (plan.ollama_backends if whole else plan.mixed_backends).append(section.name)
    for section in sections:
        if section.kind == "frontend":
            targets = [_backend_refs(a) for k, a, _ in section.directives() if k in ("default_backend", "use_backend")]
            if any(t in plan.ollama_backends for t in targets):
                plan.ollama_frontends.append(section.name)
        elif section.kind == "listen" and any(is_ollama(s, instances) for s in servers(section)):
            plan.ollama_frontends.append(section.name)


@dataclass
class _Builder:
    """Puts each section of the original config into the gateway data, or leaves it out."""

    plan: Retirement
    instances: list[OllamaHost]
    successor: Successor
    body: str
    first_defaults: Section | None
    gateway: dict[str, Any] = field(
        default_factory=lambda: {"global": [], "defaults": [], "sections": [], "frontends": [], "backends": []}
    )

    def place(self, section: Section) -> None:
        plan = self.plan
        if section.kind == "global":
            self.gateway["global"] = _lines(section)
        elif section is self.first_defaults:
            self.gateway["defaults"] = _lines(section)
        elif section.name in plan.ollama_frontends and section.kind in ("frontend", "listen"):
            plan.frontend_binds += [a for k, a, _ in section.directives() if k == "bind"]
            frontend = _frontend(section, plan.ollama_backends, self.successor, self.body)
            if frontend is not None:
                self.gateway["frontends"].append(frontend)
        elif section.kind == "backend" and section.name in plan.mixed_backends:
            kept = [line for line in section.lines
                    if not (line.strip().startswith("server ") and _line_is_ollama(section, line, self.instances))]
            self.gateway["sections"].append(Section(section.kind, section.name, section.header, kept).text())
        elif section.kind and not (section.kind == "backend" and section.name in plan.ollama_backends):
            self.gateway["sections"].append(section.text())


def _lines(section: Section) -> list[str]:
    return [line.strip() for line in section.lines if line.strip()]


def _line_is_ollama(section: Section, line: str, instances: list[OllamaHost]) -> bool:
    probe = Section(section.kind, section.name, "", [line])
    return any(is_ollama(s, instances) for s in servers(probe))


def _kept_by_frontend(section: Section, keyword: str, args: str) -> bool:
    """A listen section becomes a frontend: its backend-only lines go with its servers."""
    if section.kind != "listen":
        return True
    return keyword not in _BACKEND_ONLY and not (keyword == "option" and args.startswith("httpchk"))


def _frontend(section: Section, ollama_backends: list[str], successor: Successor,
              body: str) -> dict[str, Any] | None:
    """The frontend as gateway data; None when it only served Ollama and is to be removed."""
    binds, mode, lines = [], "http", []
    default_backend = ""
    served_only_ollama = True
    for keyword, args, line in section.directives():
        if keyword == "bind":
            binds.append(args)
        elif keyword == "mode":
            mode = args
        elif keyword in ("default_backend", "use_backend"):
            target = _backend_refs(args)
            if target in ollama_backends:
                continue
            served_only_ollama = False
            if keyword == "default_backend":
                default_backend = target
            else:
                lines.append(line.strip())
        elif _kept_by_frontend(section, keyword, args):
            lines.append(line.strip())
    frontend: dict[str, Any] = {"name": section.name, "binds": binds, "mode": mode, "lines": lines, "answers": [],
                                "routes": [], "default_backend": default_backend}
    if successor.action == "remove":
        return None if served_only_ollama else frontend
    return _repoint(frontend, successor, body)


def _repoint(frontend: dict[str, Any], successor: Successor, body: str) -> dict[str, Any]:
    """/v1 (and, where Ollama was the default, everything) to the successor; /api/ answered by HAProxy."""
    if frontend["mode"] == "http":
        frontend["answers"] = [{"path_prefix": "/api/", "status": RETIRED_STATUS, "content_type": "application/json",
                                "body": body}]
        # HAProxy otherwise holds small writes back while a response is unfinished, so a token stream
        # reaches students in bursts (often the whole answer at once).
        if STREAMING not in frontend["lines"]:
            frontend["lines"].append(STREAMING)
    if frontend["default_backend"]:
        frontend["routes"] = [{"path_prefix": "/v1/", "backend": successor.backend}]
    else:
        frontend["default_backend"] = successor.backend
    return frontend


def bind_port(bind: str) -> int | None:
    """Port of a `bind` argument (`127.0.0.1:11434`, `:11434`, `*:11434 ssl crt ...`)."""
    address = bind.split(maxsplit=1)[0] if bind.split() else ""
    _, _, port = address.rpartition(":")
    return int(port) if port.isdigit() else None


def bind_client_url(bind: str) -> str:
    """How a client on the box reaches a bind address."""
    address = bind.split(maxsplit=1)[0] if bind.split() else ""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0", "::"):
        host = "127.0.0.1"
    scheme = "https" if " ssl" in f" {bind}" else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"
