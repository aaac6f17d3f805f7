"""Discovery's helpers that need no systemd: GPU processes by unit, result files, space, the state."""

from __future__ import annotations

import ollama_archive_discover as discover
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

SMI = """#!/bin/sh
# Scripted nvidia-smi: the compute apps query only.
case "$*" in
  *--query-compute-apps=pid,process_name,used_memory,gpu_uuid*) cat "$APPS" ;;
  *) echo "unexpected: $*" >&2; exit 97 ;;
esac
"""


@pytest.fixture
def module():
    with patch_module_args({}):
        return AnsibleModule(argument_spec={})


def test_gpu_processes_are_mapped_to_units_through_their_cgroup(tmp_path, monkeypatch, module):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(SMI)
    smi.chmod(0o755)
    apps = tmp_path / "apps"
    apps.write_text("2817, /usr/local/bin/ollama, 14336, GPU-aaaa\n4242, python3, 512, GPU-bbbb\n")
    monkeypatch.setenv("APPS", str(apps))
    # A runner is a child of ollama serve, in its unit's cgroup.
    proc = tmp_path / "proc"
    for pid, cgroup in ((2817, "0::/system.slice/system-ollama.slice/ollama@0.service\n"), (4242, "0::/user.slice\n")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(cgroup)
    monkeypatch.setattr(discover, "PROC", proc)
    unit = "ollama@0.service"
    facts = discover.gpu_facts(module, str(smi), {1999: unit})
    assert facts["available"] is True
    mine, other = facts["processes"]
    assert (mine["name"], mine["used_mib"], mine["gpu_uuid"]) == ("/usr/local/bin/ollama", 14336, "GPU-aaaa")
    assert mine["unit"] == unit
    assert other["unit"] == ""


def test_no_nvidia_smi_is_said_plainly(module):
    facts = discover.gpu_facts(module, "/nonexistent/nvidia-smi", {})
    assert facts == {"available": False, "reason": "/nonexistent/nvidia-smi not found on this box", "processes": []}


def test_result_globs_take_files_and_whole_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").write_text("{}")
    (tmp_path / "a" / "deep").mkdir()
    (tmp_path / "a" / "deep" / "y.md").write_text("#")
    (tmp_path / "b.txt").write_text("b")
    found = discover.result_files([str(tmp_path / "a"), str(tmp_path / "*.txt"), str(tmp_path / "none*")])
    assert found == sorted([str(tmp_path / "a/x.json"), str(tmp_path / "a/deep/y.md"), str(tmp_path / "b.txt")])


def test_space_plan_counts_blobs_only_when_they_are_copied(tmp_path):
    root = str(tmp_path / "not" / "yet")
    in_place = discover.space_plan(root, 1000, 0, blob_bytes=10**15, blob_mode="in_place", stores=[str(tmp_path)])
    assert in_place["checked_at"] == str(tmp_path) and in_place["writable"] and in_place["enough"]
    assert in_place["needed_bytes"] == 1000
    copied = discover.space_plan(root, 1000, 0, blob_bytes=10**15, blob_mode="copy", stores=[str(tmp_path)])
    assert copied["needed_bytes"] == 1000 + 10**15 and not copied["enough"]
    moved = discover.space_plan(root, 1000, 0, blob_bytes=10**15, blob_mode="move", stores=[str(tmp_path)])
    assert moved["blob_bytes"] == 0  # a rename on the same file system needs no room
    reserved = discover.space_plan(root, 0, reserve=10**15, blob_bytes=0, blob_mode="in_place", stores=[])
    assert not reserved["enough"]


def instance(unit: str, active: str = "active") -> dict:
    return {"unit": unit, "state": {"active": active}, "api": {"tags": [{"name": "a:1"}, {"name": "b:2"}]},
            "url": f"http://127.0.0.1:{11435 if unit.endswith('0.service') else 11436}"}


def test_the_state_is_decided_from_units_and_the_newest_archive():
    none = discover.Archived()
    assert discover.decide([], none, set(), []) == ("none", "", [])
    archived = discover.Archived("/a/1", {"instances": [{"unit": "ollama@0.service"}], "files": []})
    assert discover.decide([], archived, {"ollama@0.service"}, [])[0] == "retired"
    live = [instance("ollama@1.service")]
    assert discover.decide(live, none, set(), [])[0] == "live"
    # ollama@0 is masked by an archive that does not describe the live ollama@1: mixed.
    assert discover.decide(live, archived, {"ollama@0.service"}, []) == ("mixed", "", ["ollama@0.service"])


def test_the_probe_loads_the_students_address_with_a_model_every_instance_lists():
    running = [instance("ollama@0.service"), instance("ollama@1.service")]
    running[1]["api"]["tags"] = [{"name": "b:2"}]
    target = discover.probe_target({"client_url": "http://127.0.0.1:11434"}, running)
    assert target["url"] == "http://127.0.0.1:11434" and target["model"] == "b:2"
    assert discover.probe_target({}, running)["url"] == "http://127.0.0.1:11435"
