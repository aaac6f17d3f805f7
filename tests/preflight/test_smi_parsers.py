"""nvidia-smi parsers against transcripts recorded on real H100 and 2x H200 hosts."""

from __future__ import annotations

import pytest
from ansible.module_utils.gpu_preflight_smi import (
    SmiParseError,
    classify_link,
    parse_compute_apps,
    parse_header_versions,
    parse_number,
    parse_query_gpu,
    parse_topology,
    strip_ansi,
)

from tests.support.nvidia_smi import output


def test_query_gpu_h200x2_idle():
    gpus = parse_query_gpu(output("h200x2/query.txt"))
    assert [gpu.index for gpu in gpus] == [0, 1]
    assert {gpu.name for gpu in gpus} == {"NVIDIA H200"}
    assert gpus[1].uuid == "GPU-0d947aaf-921f-9811-ff09-58e598f43d46"
    assert gpus[0].pci_bus_id == "00000000:00:06.0"
    assert gpus[0].memory_total_mib == 143771
    assert gpus[0].memory_used_mib == 0
    assert gpus[0].compute_cap_tuple() == (9, 0)
    assert gpus[0].driver_version == "580.159.04"


def test_query_gpu_h200x2_under_load_reads_used_memory_per_gpu():
    gpus = parse_query_gpu(output("h200x2/load/query.txt"))
    assert [gpu.memory_used_mib for gpu in gpus] == [15309, 4]


def test_query_gpu_h100():
    (gpu,) = parse_query_gpu(output("h100/load/query.txt"))
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert (gpu.memory_total_mib, gpu.memory_used_mib) == (81559, 15309)


def test_query_gpu_tolerates_units_and_not_available_values():
    # Same fields with units (the header variant) and N/A markers some devices print.
    text = "0, NVIDIA H100 80GB HBM3, GPU-x, 00000000:00:06.0, 580.159.04, 81559 MiB, [N/A], [Not Supported]\n"
    (gpu,) = parse_query_gpu(text)
    assert gpu.memory_total_mib == 81559
    assert gpu.memory_used_mib is None
    assert gpu.compute_cap is None
    assert gpu.compute_cap_tuple() is None


def test_query_gpu_keeps_columns_when_the_name_has_a_comma():
    (gpu,) = parse_query_gpu("3, Odd, Name, GPU-y, 0000:01:00.0, 580.1, 100, 1, 8.9\n")
    assert (gpu.index, gpu.name, gpu.uuid, gpu.compute_cap) == (3, "Odd, Name", "GPU-y", "8.9")


def test_query_gpu_rejects_an_error_message_instead_of_rows():
    with pytest.raises(SmiParseError):
        parse_query_gpu("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n")


def test_query_gpu_header_line_is_not_a_gpu():
    # A header (csv without noheader) must not be mistaken for a GPU row.
    with pytest.raises(SmiParseError):
        parse_query_gpu(output("h100/query-header.txt"))


@pytest.mark.parametrize("name", ["h200x2/smi.txt", "h100/smi.txt", "h100/version.txt", "h200x2/version.txt"])
def test_header_versions(name):
    assert parse_header_versions(output(name)) == ("580.159.04", "13.0")


def test_header_versions_absent():
    assert parse_header_versions("garbage\n") == (None, None)


def test_topology_h200x2_nvlink_through_escape_codes():
    raw = output("h200x2/topo.txt")
    assert "\x1b[4m" in raw  # the recorded output really carries the escape codes
    topo = parse_topology(raw)
    assert topo.gpu_indices == [0, 1]
    link = topo.link(1, 0)
    assert link is not None
    assert (link.kind, link.label) == ("nvlink", "NV18")
    assert topo.to_dict()["links"] == [{"a": 0, "b": 1, "kind": "nvlink", "label": "NV18"}]


def test_topology_ignores_a_pasted_prompt_line():
    pasted = "$ nvidia-smi topo -m\n" + output("h200x2/topo.txt")
    assert parse_topology(pasted).link(0, 1).label == "NV18"


def test_topology_single_gpu_has_no_links():
    topo = parse_topology(output("h100/topo.txt"))
    assert topo.gpu_indices == [0]
    assert topo.links == []


def test_topology_ignores_nic_columns_and_rows():
    text = (
        "\t\x1b[4mGPU0\tGPU1\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\x1b[0m\n"
        "GPU0\t X \tPIX\tSYS\t0-15\t0\t\tN/A\n"
        "GPU1\tPIX\t X \tSYS\t0-15\t0\t\tN/A\n"
        "NIC0\tSYS\tSYS\t X \t\t\t\t\n"
        "\nLegend:\n"
    )
    topo = parse_topology(text)
    assert topo.gpu_indices == [0, 1]
    assert [(link.a, link.b, link.kind, link.label) for link in topo.links] == [(0, 1, "pcie", "PIX")]


def test_topology_without_gpu_header_raises():
    with pytest.raises(SmiParseError):
        parse_topology("No devices were found\n")


@pytest.mark.parametrize(
    ("label", "kind"),
    [("NV18", "nvlink"), ("NV4", "nvlink"), ("PIX", "pcie"), ("SYS", "pcie"), ("NODE", "pcie"), ("X", "unknown")],
)
def test_classify_link(label, kind):
    assert classify_link(label) == kind


def test_compute_apps_idle_is_empty():
    assert parse_compute_apps(output("h200x2/apps.txt")) == []


def test_compute_apps_under_load():
    (app,) = parse_compute_apps(output("h200x2/load/apps.txt"))
    assert (app.pid, app.process_name, app.used_memory_mib) == (737, "python3", 15300)
    assert app.gpu_uuid == "GPU-c469ea13-4e36-5f9d-0018-f8349ec6578d"


def test_compute_apps_full_path_and_not_available_memory():
    (app,) = parse_compute_apps("2817, /usr/local/bin/ollama, [N/A], GPU-z\n")
    assert app.basename == "ollama"
    assert app.used_memory_mib is None


def test_compute_apps_rejects_short_rows():
    with pytest.raises(SmiParseError):
        parse_compute_apps("2817, ollama\n")


def test_parse_number_and_strip_ansi():
    assert parse_number("81559 MiB") == 81559
    assert parse_number("[N/A]") is None
    assert parse_number("abc") is None
    assert strip_ansi("\x1b[4mGPU0\x1b[0m") == "GPU0"
