"""playbooks/compare.yml on the controller itself (connection local): the box's folders are temporary folders
holding an Ollama archive with its "before" report and two gate reports. The page lands with the newest gate
report's numbers, a second run and a dry run change nothing, and a box with nothing to compare says why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from classroom_probe.compare import FIGURES
from classroom_probe.textfmt import sig

from tests.site.conftest import ROOT

PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def _box(tmp: Path, before: Path, after: Path) -> tuple[Path, Path]:
    archive = tmp / "archive"
    probe_dir = archive / "20260105T073000Z" / "probe" / "20260105T073001Z"
    probe_dir.mkdir(parents=True)
    shutil.copy(before, probe_dir / "report.json")
    (archive / "20260105T073000Z" / "MANIFEST.json").write_text(json.dumps({"binary": {"version": "0.9.9"}}))
    gate = tmp / "gate"
    for stamp, src in (("20260105T080000Z", before), ("20260105T090000Z", after)):
        (gate / stamp).mkdir(parents=True)
        shutil.copy(src, gate / stamp / "report.json")
    # A rollback's gate of Ollama, newer, in the same folder: never the "after".
    ollama = json.loads(before.read_text())
    ollama["config"]["api"] = "ollama"
    (gate / "20260105T100000Z").mkdir()
    (gate / "20260105T100000Z" / "report.json").write_text(json.dumps(ollama))
    return archive, gate


def _play(tmp: Path, archive: Path, gate: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"classroom_boxes": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}))
    return subprocess.run(
        [str(PLAYBOOK), "-i", str(inventory), str(ROOT / "playbooks" / "compare.yml"),
         "-e", json.dumps({"ollama_archive_dir": str(archive), "concurrency_probe_remote_report_dir": str(gate),
                           "comparison_dir": str(tmp / "out"), "comparison_docs_page": str(tmp / "docs.md"),
                           "comparison_lab": True, "vllm_server_version": "0.32.0"}), *extra],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        env={"PATH": str(PLAYBOOK.parent) + ":/usr/bin:/bin", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "ANSIBLE_FORCE_COLOR": "0", "HOME": str(tmp)})


def _changed(out: str) -> int:
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", out)
    assert match, out[-3000:]
    return int(match.group(1))


def test_the_page_lands_and_reruns_change_nothing(two_reports: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = two_reports
    archive, gate = _box(tmp_path, before, after)
    first = _play(tmp_path, archive, gate)
    assert first.returncode == 0, first.stdout[-3000:]
    assert _changed(first.stdout) >= 1
    md = (tmp_path / "out" / "localhost" / "comparison.md").read_text()
    assert (tmp_path / "docs.md").read_text() == md
    assert "comparison.html" in first.stdout and (tmp_path / "out" / "localhost" / "comparison.html").exists()
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    for label, get, _ in FIGURES:
        assert f"| {label} | {sig(get(a))} | {sig(get(b))} |" in md, label
    assert "Ollama 0.9.9" in md or "0.9.9" in md or a["server"]["version"] in md
    assert str(gate / "20260105T090000Z" / "report.json") in md
    again = _play(tmp_path, archive, gate)
    assert again.returncode == 0 and _changed(again.stdout) == 0, again.stdout[-3000:]
    dry = _play(tmp_path, archive, gate, "--check", "--diff")
    assert dry.returncode == 0 and _changed(dry.stdout) == 0, dry.stdout[-3000:]


def test_nothing_to_compare_is_said_not_failed(tmp_path: Path) -> None:
    proc = _play(tmp_path, tmp_path / "no-archive", tmp_path / "no-gate", "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "No comparison on localhost" in proc.stdout and "playbooks/ollama.yml makes one" in proc.stdout
    assert not (tmp_path / "out").exists()
