"""systemd units that run `ollama serve`: parsers for `systemctl show`, environment files and OLLAMA_HOST.

Pure functions over text, so unit tests feed them recorded output. systemd resolves drop-ins and
templates itself; `systemctl show` prints the effective ExecStart and Environment, and the names of
the EnvironmentFile= files, which are read and merged here the way systemd merges them.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

# The properties discovery asks `systemctl show` for, in one call for every candidate unit.
SHOW_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "FragmentPath",
    "DropInPaths",
    "ExecStart",
    "Environment",
    "EnvironmentFiles",
    "User",
    "MainPID",
)
DEFAULT_PORT = 11434
_ARGV = re.compile(r"argv\[\]=(?P<argv>.*?) ; ignore_errors=")
_ENV_FILE = re.compile(r"(?P<path>\S+) \(ignore_errors=(?P<ignore>yes|no)\)")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_SHELLS = {"sh", "bash", "dash", "zsh"}


@dataclass(frozen=True)
class EnvFileRef:
    path: str
    ignore_errors: bool


@dataclass
class UnitShow:
    """One unit as `systemctl show` reports it."""

    name: str
    load_state: str = ""
    active_state: str = ""
    sub_state: str = ""
    unit_file_state: str = ""
    fragment_path: str = ""
    drop_in_paths: list[str] = field(default_factory=list)
    exec_start: list[list[str]] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    environment_files: list[EnvFileRef] = field(default_factory=list)
    user: str = ""
    main_pid: int = 0


def parse_show(text: str) -> list[UnitShow]:
    """Blocks of `systemctl show -p ... UNIT...`, separated by blank lines, in any property order."""
    units: list[UnitShow] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        values: dict[str, list[str]] = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values.setdefault(key, []).append(value)
        if "Id" not in values:
            continue
        unit = UnitShow(name=values["Id"][0])
        unit.load_state = _first(values, "LoadState")
        unit.active_state = _first(values, "ActiveState")
        unit.sub_state = _first(values, "SubState")
        unit.unit_file_state = _first(values, "UnitFileState")
        unit.fragment_path = _first(values, "FragmentPath")
        unit.drop_in_paths = [p for v in values.get("DropInPaths", []) for p in v.split()]
        unit.exec_start = [argv for v in values.get("ExecStart", []) for argv in parse_exec(v)]
        unit.environment = {}
        for value in values.get("Environment", []):
            unit.environment.update(parse_environment_property(value))
        unit.environment_files = [ref for v in values.get("EnvironmentFiles", []) for ref in parse_env_file_refs(v)]
        unit.user = _first(values, "User")
        pid = _first(values, "MainPID")
        unit.main_pid = int(pid) if pid.isdigit() else 0
        units.append(unit)
    return units


def _first(values: dict[str, list[str]], key: str) -> str:
    found = values.get(key) or [""]
    return found[0].strip()


def parse_exec(value: str) -> list[list[str]]:
    """Every command line of an ExecStart= property (`{ path=... ; argv[]=... ; ignore_errors=... }`)."""
    commands = []
    for match in _ARGV.finditer(value):
        raw = match.group("argv")
        try:
            commands.append(shlex.split(raw))
        except ValueError:  # an unbalanced quote: keep the words rather than fail discovery
            commands.append(raw.split())
    return commands


def parse_environment_property(value: str) -> dict[str, str]:
    """Environment= as `systemctl show` prints it: space-separated assignments, quoted where needed."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    env = {}
    for word in words:
        key, sep, val = word.partition("=")
        if sep and _ENV_NAME.match(key):
            env[key] = val
    return env


def parse_env_file_refs(value: str) -> list[EnvFileRef]:
    return [EnvFileRef(m.group("path"), m.group("ignore") == "yes") for m in _ENV_FILE.finditer(value)]


def parse_env_file(text: str) -> dict[str, str]:
    """An EnvironmentFile= the way systemd reads it: KEY=VALUE lines, # and ; comments, shell-style quotes."""
    env: dict[str, str] = {}
    lines = text.replace("\\\n", "").splitlines()
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            continue
        env[key] = _env_value(value.strip())
    return env


def _env_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        return re.sub(r'\\(["\\$`])', r"\1", inner)
    # Unquoted: trailing comments are part of the value for systemd; only surrounding spaces go.
    return value


def effective_environment(unit: UnitShow, files: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """Environment= then every EnvironmentFile= in order (files override); problems with missing files."""
    env = dict(unit.environment)
    problems = []
    for ref in unit.environment_files:
        text = files.get(ref.path)
        if text is None:
            if not ref.ignore_errors:
                problems.append(f"{unit.name}: EnvironmentFile {ref.path} cannot be read")
            continue
        env.update(parse_env_file(text))
    return env, problems


def ollama_command(argv: list[str]) -> list[str] | None:
    """The `ollama serve` part of a command line (also behind env or sh -c); None when it is not one."""
    words = list(argv)
    if words and os.path.basename(words[0]) in _SHELLS and "-c" in words:
        script = words[words.index("-c") + 1] if words.index("-c") + 1 < len(words) else ""
        try:
            inner = shlex.split(script)
        except ValueError:
            inner = script.split()
        return ollama_command([w for w in inner if w not in ("exec",)])
    for i, word in enumerate(words[:-1]):
        if os.path.basename(word) == "ollama" and words[i + 1] == "serve":
            return words[i:]
    return None


def runs_ollama_serve(unit: UnitShow) -> bool:
    return any(ollama_command(argv) is not None for argv in unit.exec_start)


def ollama_binary(unit: UnitShow) -> str:
    for argv in unit.exec_start:
        command = ollama_command(argv)
        if command is not None:
            return command[0]
    return ""


@dataclass(frozen=True)
class OllamaHost:
    """OLLAMA_HOST as Ollama's envconfig.Host reads it."""

    scheme: str
    host: str  # '' listens on every address
    port: int

    @property
    def client_host(self) -> str:
        """Where a client on the box reaches the server."""
        if self.host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host

    @property
    def url(self) -> str:
        host = self.client_host
        shown = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{shown}:{self.port}"

    def serves(self, address: str, port: int) -> bool:
        """Does a connection to address:port reach this server (as HAProxy's server line would)?"""
        if port != self.port:
            return False
        if self.host in ("", "0.0.0.0", "::"):
            return True
        loopback = {"127.0.0.1", "localhost", "::1"}
        return address == self.host or (address in loopback and self.host in loopback)


def parse_ollama_host(value: str | None) -> OllamaHost:
    raw = (value or "").strip()
    scheme, sep, hostport = raw.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, hostport = "http", raw
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    hostport = hostport.split("/", 1)[0]
    host, port_text = split_host_port(hostport)
    if port_text is None:
        host, port_text = (hostport.strip("[]") if hostport else "127.0.0.1"), str(default_port)
    if not port_text.isdigit() or int(port_text) > 65535:
        return OllamaHost("http", "127.0.0.1", DEFAULT_PORT)
    return OllamaHost(scheme, host, int(port_text))


def split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end > 0 and hostport[end + 1 : end + 2] == ":":
            return hostport[1:end], hostport[end + 2 :]
        return hostport, None
    if hostport.count(":") == 1:
        host, port = hostport.split(":")
        return host, port
    return hostport, None


def unit_kind(name: str) -> str:
    """plain (the install script's ollama.service), template-instance (name@N) or custom (any other name)."""
    if "@" in name.split(".", maxsplit=1)[0]:
        return "template-instance"
    if name == "ollama.service":
        return "plain"
    return "custom"


# The drop-in that retires a unit systemd cannot mask (see mask_kind).
RETIRED_DROPIN = "99-ollama-archive-retired.conf"


def mask_kind(name: str, fragment: str) -> str:
    """How a unit is kept from starting once retired: "persistent" (systemctl mask) or "drop-in".

    systemctl refuses to mask a unit whose own file is /etc/systemd/system/<name> (the install script's
    ollama.service), and a mask in /run would not win over /etc; such a unit gets a drop-in instead.
    """
    return "drop-in" if fragment == f"/etc/systemd/system/{name}" else "persistent"


def retired_by_dropin(unit: UnitShow) -> bool:
    return any(path.endswith("/" + RETIRED_DROPIN) for path in unit.drop_in_paths)


def redact_environment(env: dict[str, str]) -> dict[str, str]:
    """Values that look like secrets are replaced; the archive's tarball keeps the originals."""
    out = {}
    for key, value in env.items():
        if _SECRET_NAME.search(key):
            out[key] = "<redacted>"
        else:
            out[key] = _URL_CREDENTIALS.sub(r"\g<scheme><redacted>@", value)
    return out


def redact_unit_text(text: str) -> str:
    """A unit or drop-in with the values of secret-looking Environment= assignments replaced."""
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("Environment=") and (_SECRET_NAME.search(stripped) or _URL_CREDENTIALS.search(stripped)):
            safe = redact_environment(parse_environment_property(stripped.removeprefix("Environment=")))
            out.append("Environment=" + " ".join(shlex.quote(f"{k}={v}") for k, v in safe.items()) + "\n")
        else:
            out.append(line)
    return "".join(out)
