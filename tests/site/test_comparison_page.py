"""The before-and-after page (roles/healthcheck/files/comparison_page.py, run by playbooks/compare.yml) and the
scenario's check of it (molecule/site/files/check_comparison.py): every number comes from the reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from classroom_probe.compare import FIGURES
from classroom_probe.textfmt import sig

from tests.site.conftest import ROOT, load_file

PAGE = ROOT / "roles" / "healthcheck" / "files" / "comparison_page.py"
CHECK = ROOT / "molecule" / "site" / "files" / "check_comparison.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "probe" / "src")}


def _input(before: Path, after: Path, *, lab: bool) -> dict[str, object]:
    return {"box": "classroom-lab", "lab": lab, "before": json.loads(before.read_text()),
            "after": json.loads(after.read_text()), "before_source": f"box:{before}", "after_source": f"box:{after}",
            "ollama_version": "0.33.0", "vllm_version": "0.32.0"}


def _render(payload: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PAGE)], input=json.dumps(payload), capture_output=True, text=True,
                          env=ENV, timeout=60, check=False)


def test_every_figure_on_the_page_is_the_reports_figure(two_reports: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = two_reports
    proc = _render(_input(before, after, lab=True))
    assert proc.returncode == 0, proc.stderr
    page = json.loads(proc.stdout)
    md = page["markdown"]
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    for label, get, _ in FIGURES:
        assert f"| {label} | {sig(get(a))} | {sig(get(b))} |" in md, label
    assert md.startswith("# Performance comparison on classroom-lab")
    assert "This page comes from the lab" in md and "This page comes from the lab" in page["html"]
    assert "vLLM 0.32.0" in md or "vllm" in md.lower()
    assert f"box:{before}" in md and f"box:{after}" in md
    assert not any(tag in page["html"] for tag in ("<script", "<link", "src=", "href="))
    (tmp_path / "c.md").write_text(md)
    check = subprocess.run([sys.executable, str(CHECK), str(tmp_path / "c.md"), str(before), str(after)],
                           capture_output=True, text=True, env=ENV, timeout=60, check=False)
    assert check.returncode == 0, check.stdout


def test_the_classroom_page_does_not_say_lab(two_reports: tuple[Path, Path]) -> None:
    proc = _render(_input(*two_reports, lab=False))
    assert proc.returncode == 0, proc.stderr
    md = json.loads(proc.stdout)["markdown"]
    assert "lab" not in md.split("A: Ollama")[0].lower().replace("classroom-lab", "")


def test_the_check_finds_a_typed_number(two_reports: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = two_reports
    md = json.loads(_render(_input(before, after, lab=True)).stdout)["markdown"]
    a = json.loads(before.read_text())
    wrong = md.replace(f"| Requests ok | {sig(a['aggregates']['requests_ok'])} |", "| Requests ok | 123456 |")
    assert wrong != md
    (tmp_path / "c.md").write_text(wrong)
    check = subprocess.run([sys.executable, str(CHECK), str(tmp_path / "c.md"), str(before), str(after)],
                           capture_output=True, text=True, env=ENV, timeout=60, check=False)
    assert check.returncode == 1 and "Requests ok" in check.stdout


def test_bad_input_is_named_without_a_traceback() -> None:
    for payload in ({"box": "x"}, {"box": "x", "before": {}, "after": {}}, []):
        proc = _render(payload)
        assert proc.returncode == 2 and proc.stderr.startswith("bad input:"), proc.stderr
        assert "Traceback" not in proc.stderr


def test_the_page_module_loads_as_a_file() -> None:
    module = load_file(PAGE, "comparison_page")
    assert module.MARKER.startswith("<!--")
