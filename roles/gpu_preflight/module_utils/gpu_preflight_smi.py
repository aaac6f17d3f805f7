"""Parsers for nvidia-smi output.

Pure functions over the text a command printed, so unit tests can feed them recorded
transcripts. Parsing is defensive about values (``[N/A]``, units, escape codes) and strict
about structure: a line that cannot be a GPU row raises ``SmiParseError`` instead of being
silently dropped, because a miscounted GPU would make every later check wrong.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

QUERY_GPU_FIELDS = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "driver_version",
    "memory.total",
    "memory.used",
    "compute_cap",
)
QUERY_APPS_FIELDS = ("pid", "process_name", "used_memory", "gpu_uuid")

# nvidia-smi prints these instead of a value when a field is unavailable on a device.
_NOT_AVAILABLE = {
    "",
    "n/a",
    "[n/a]",
    "not supported",
    "[not supported]",
    "[unknown error]",
    "[insufficient permissions]",
}
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NUMBER = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)")
_CUDA_VERSION = re.compile(r"CUDA Version\s*:?\s*([0-9]+\.[0-9]+)")
_DRIVER_VERSION = re.compile(r"Driver Version\s*:?\s*([0-9]+(?:\.[0-9]+)+)", re.IGNORECASE)
_GPU_LABEL = re.compile(r"^GPU([0-9]+)$")
_NVLINK = re.compile(r"^NV([0-9]+)$")
_PCIE_LINKS = {"PIX", "PXB", "PHB", "NODE", "SYS", "SOC"}


class SmiParseError(ValueError):
    """The output does not have the structure of the command that was run."""


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    uuid: str
    pci_bus_id: str
    driver_version: str | None
    memory_total_mib: int | None
    memory_used_mib: int | None
    compute_cap: str | None
    # nvidia-smi fields that read [N/A], [Not Supported] or similar: unknown, never zero.
    unknown: tuple[str, ...] = ()

    def compute_cap_tuple(self) -> tuple[int, int] | None:
        if self.compute_cap is None:
            return None
        major, _, minor = self.compute_cap.partition(".")
        try:
            return int(major), int(minor or 0)
        except ValueError:
            return None


@dataclass(frozen=True)
class ComputeApp:
    pid: int | None
    process_name: str
    used_memory_mib: int | None
    gpu_uuid: str

    @property
    def basename(self) -> str:
        # nvidia-smi shows either a bare name (python3) or a full path (/usr/local/bin/ollama).
        return self.process_name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Link:
    a: int
    b: int
    kind: str  # nvlink, pcie or unknown
    label: str  # as printed: NV18, PIX, SYS ...


@dataclass
class Topology:
    gpu_indices: list[int] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    def link(self, a: int, b: int) -> Link | None:
        for link in self.links:
            if {link.a, link.b} == {a, b}:
                return link
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"gpu_indices": list(self.gpu_indices), "links": [asdict(link) for link in self.links]}


def strip_ansi(text: str) -> str:
    return _ANSI_ESCAPE.sub("", text)


def is_not_available(value: str) -> bool:
    return value.strip().lower() in _NOT_AVAILABLE


def parse_number(value: str) -> float | None:
    """Number at the start of a field, tolerating units (``81559 MiB``) and ``[N/A]``."""
    if is_not_available(value):
        return None
    match = _NUMBER.match(value)
    return float(match.group(1)) if match else None


def parse_int(value: str) -> int | None:
    number = parse_number(value)
    return None if number is None else int(number)


def _text_or_none(value: str) -> str | None:
    return None if is_not_available(value) else value.strip()


def _data_lines(text: str) -> list[str]:
    return [line.strip() for line in strip_ansi(text).splitlines() if line.strip()]


def parse_query_gpu(text: str) -> list[Gpu]:
    """Rows of ``--query-gpu=<QUERY_GPU_FIELDS> --format=csv,noheader,nounits``."""
    gpus = []
    for line in _data_lines(text):
        fields = [part.strip() for part in line.split(",")]
        if len(fields) < len(QUERY_GPU_FIELDS) or parse_int(fields[0]) is None:
            raise SmiParseError(f"not a --query-gpu row ({len(QUERY_GPU_FIELDS)} fields expected): {line!r}")
        # A comma inside the product name would shift the columns: keep the ends fixed.
        tail = fields[-6:]
        name = ", ".join(fields[1 : len(fields) - 6])
        unknown = tuple(
            field_name
            for field_name, value in zip(QUERY_GPU_FIELDS[-4:], tail[2:], strict=True)
            if is_not_available(value)
        )
        gpus.append(
            Gpu(
                index=int(parse_int(fields[0]) or 0),
                name=name,
                uuid=tail[0],
                pci_bus_id=tail[1],
                driver_version=_text_or_none(tail[2]),
                memory_total_mib=parse_int(tail[3]),
                memory_used_mib=parse_int(tail[4]),
                compute_cap=_text_or_none(tail[5]),
                unknown=unknown,
            )
        )
    return gpus


@dataclass(frozen=True)
class SmiFailure:
    """Why nvidia-smi could not list the GPUs, named for what it is."""

    kind: str
    summary: str
    fix: str


# Matched against the message first (it is what users search for), then the exit code
# (nvidia-smi(1), RETURN VALUE). Order matters: the first match wins.
_FAILURE_MESSAGES: tuple[tuple[str, str, str, str], ...] = (
    (
        "version mismatch",
        "version_mismatch",
        "the NVIDIA kernel module and the user-space driver library have different versions",
        "reboot so the kernel loads the module of the installed driver (or reinstall one driver version)",
    ),
    (
        "couldn't communicate with the nvidia driver",
        "driver_not_loaded",
        "the NVIDIA kernel driver is not loaded",
        "install or load the NVIDIA driver (lsmod | grep nvidia; reboot after installing), then rerun",
    ),
    (
        "no devices were found",
        "no_devices",
        "the driver is loaded but sees no GPU",
        "check that the GPUs are visible (lspci | grep -i nvidia) and healthy (dmesg: Xid errors, 'fallen off the "
        "bus'); in a container, pass the GPU devices through",
    ),
    (
        "insufficient permissions",
        "permission",
        "nvidia-smi may not open the GPU devices as this user",
        "run the play with become (root) or give the user access to /dev/nvidia*",
    ),
    (
        "fallen off the bus",
        "gpu_lost",
        "a GPU has fallen off the bus or become inaccessible",
        "power-cycle the box; if it repeats, reseat the card and check its power and the Xid errors in dmesg",
    ),
    (
        "gpu is lost",
        "gpu_lost",
        "a GPU has fallen off the bus or become inaccessible",
        "power-cycle the box; if it repeats, reseat the card and check its power and the Xid errors in dmesg",
    ),
    (
        "couldn't find libnvidia-ml",
        "nvml_missing",
        "the NVML library (libnvidia-ml.so) of the driver is missing",
        "reinstall the NVIDIA driver's user-space libraries",
    ),
)
_FAILURE_EXIT_CODES: dict[int, str] = {
    4: "permission",
    6: "no_devices",
    9: "driver_not_loaded",
    12: "nvml_missing",
    15: "gpu_lost",
}


def classify_failure(exit_code: int, text: str) -> SmiFailure:
    """Names an nvidia-smi failure: the message decides, the exit code is the fallback."""
    lowered = strip_ansi(text).lower()
    for needle, kind, summary, fix in _FAILURE_MESSAGES:
        if needle in lowered:
            return SmiFailure(kind, summary, fix)
    by_code = _FAILURE_EXIT_CODES.get(exit_code)
    for _, kind, summary, fix in _FAILURE_MESSAGES:
        if kind == by_code:
            return SmiFailure(kind, summary, fix)
    return SmiFailure(
        "other",
        f"nvidia-smi failed (exit {exit_code})",
        "run nvidia-smi on the box and fix what it reports; the driver's documentation lists its exit codes",
    )


def parse_compute_apps(text: str) -> list[ComputeApp]:
    """Rows of ``--query-compute-apps=pid,process_name,used_memory,gpu_uuid --format=csv,noheader,nounits``."""
    apps = []
    for line in _data_lines(text):
        if line.lower().startswith("no running"):
            continue
        fields = [part.strip() for part in line.split(",")]
        if len(fields) < len(QUERY_APPS_FIELDS):
            raise SmiParseError(f"not a --query-compute-apps row: {line!r}")
        apps.append(
            ComputeApp(
                pid=parse_int(fields[0]),
                process_name=", ".join(fields[1:-2]),
                used_memory_mib=parse_int(fields[-2]),
                gpu_uuid=fields[-1],
            )
        )
    return apps


def parse_header_versions(text: str) -> tuple[str | None, str | None]:
    """(driver version, CUDA version) from plain ``nvidia-smi`` or ``nvidia-smi --version``."""
    clean = strip_ansi(text)
    driver = _DRIVER_VERSION.search(clean)
    cuda = _CUDA_VERSION.search(clean)
    return (driver.group(1) if driver else None, cuda.group(1) if cuda else None)


def classify_link(label: str) -> str:
    label = label.strip()
    if _NVLINK.match(label):
        return "nvlink"
    if label in _PCIE_LINKS:
        return "pcie"
    return "unknown"


def parse_topology(text: str) -> Topology:
    """GPU-to-GPU links from ``nvidia-smi topo -m`` (tab-separated matrix, underlined header)."""
    lines = strip_ansi(text).splitlines()
    header: list[str] | None = None
    rows: dict[int, list[str]] = {}
    for raw in lines:
        if raw.strip().startswith("Legend"):
            break
        cells = [cell.strip() for cell in raw.split("\t")]
        if header is None:
            if any(_GPU_LABEL.match(cell) for cell in cells[1:]):
                header = cells
            continue
        label = _GPU_LABEL.match(cells[0]) if cells else None
        if label:
            rows[int(label.group(1))] = cells
    if header is None:
        raise SmiParseError("no GPU header row in topo -m output")
    columns = {col: int(m.group(1)) for col, cell in enumerate(header) if (m := _GPU_LABEL.match(cell))}
    topology = Topology(gpu_indices=sorted(columns.values()))
    for a, cells in sorted(rows.items()):
        for col, b in columns.items():
            if b <= a or col >= len(cells):
                continue
            topology.links.append(Link(a=a, b=b, kind=classify_link(cells[col]), label=cells[col]))
    return topology
