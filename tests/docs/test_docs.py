"""The documentation keeps up with the code.

- Every check the preflight and the gate can report has an entry in docs/TROUBLESHOOTING.md, anchored by
  the check's ID. The IDs are read from the code itself (the preflight's module_utils and library by
  their syntax tree, the gate's catalogue by import), never from a list kept here.
- Every relative link in README.md and docs/*.md points at a file that exists, and at a heading or
  anchor that exists in it.
- The gate's "what to change" texts point at those entries.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from classroom_probe.checks import CATALOGUE, CHECK_IDS, troubleshooting_link

ROOT = Path(__file__).resolve().parents[2]
TROUBLESHOOTING = ROOT / "docs" / "TROUBLESHOOTING.md"
PREFLIGHT_CODE = [
    *sorted((ROOT / "roles" / "gpu_preflight" / "module_utils").glob("*.py")),
    *sorted((ROOT / "roles" / "gpu_preflight" / "library").glob("*.py")),
]
GATE_CODE = ROOT / "probe" / "src" / "classroom_probe" / "gate.py"
# The entries beyond the checks that the guide must keep (anchors of its "Known problems" part).
KNOWN_PROBLEMS = (
    "driver-and-cuda-mismatch",
    "nccl-hangs-on-pcie-cards-acs-and-iommu",
    "gemma-refuses-float16",
    "out-of-memory-and-gpu_memory_utilization",
    "too-many-open-files",
    "slow-first-start-and-the-compile-cache",
    "gpu-memory-held-by-ollama",
    "flashinfer-all-reduce-crash",
    "sigill-on-the-lab-cpu-build-amx-and-bfloat16",
)


# -- the check IDs, from the code ----------------------------------------------------------------------
def _first_str_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def preflight_check_ids(files: list[Path] = PREFLIGHT_CODE) -> set[str]:
    """Names of the preflight's results: the first argument of every CheckResult(...) and of the
    helper that builds a "not measured" result, plus the (name, method) pairs the runner lists."""
    ids: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _callee(node) in {"CheckResult", "_not_measured"}:
                name = _first_str_arg(node)
                if name:
                    ids.add(name)
            name = _pair_name(node)
            method = node.elts[1] if name and isinstance(node, ast.Tuple) else None
            if name and isinstance(method, ast.Attribute) and method.attr.startswith("check_"):
                ids.add(name)
    return ids


def _pair_name(node: ast.AST) -> str | None:
    """The string of a ("name", x) pair, the way the runner and the gate list their checks."""
    if isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[0], ast.Constant):
        value = node.elts[0].value
        return value if isinstance(value, str) else None
    return None


def gate_check_ids() -> set[str]:
    """The gate's catalogue, and every ID gate.py builds a Check with (a check added there without a
    catalogue entry is found too)."""
    ids = set(CHECK_IDS)
    tree = ast.parse(GATE_CODE.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee(node) in {"Check", "_cmp"}:
            name = _first_str_arg(node)
            if name:
                ids.add(name)
        # _gpu_checks builds its two checks from (name, limit) pairs.
        name = _pair_name(node)
        if name in CHECK_IDS:
            ids.add(name)
    return ids


# -- anchors and links ---------------------------------------------------------------------------------
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but '-' and '_' removed,
    spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(path):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    links = []
    for line in _prose_lines(path):
        # Inline code may show link syntax as an example; it is not a link.
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("//"):
                continue  # http:, https:, mailto: ...
            links.append(target)
    return links


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            continue
        if fragment and (dest.is_dir() or dest.suffix != ".md" or fragment not in anchors(dest)):
            problems.append(f"{path.relative_to(ROOT)}: {target} (no anchor #{fragment} in {dest.relative_to(ROOT)})")
    return problems


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# -- the tests -----------------------------------------------------------------------------------------
def test_the_check_ids_are_found_in_the_code() -> None:
    # A guard for the extraction itself: if the code's shape changes and nothing is found, the entry
    # test below would pass for the wrong reason.
    preflight, gate = preflight_check_ids(), gate_check_ids()
    assert len(preflight) >= 10, preflight
    assert {"nvidia_smi", "memory_fit", "nofile"} <= preflight
    assert len(gate) >= 7, gate
    assert {"failures_max", "ttft_p95_ms_max"} <= gate


def test_a_new_preflight_check_in_the_code_is_found(tmp_path: Path) -> None:
    code = tmp_path / "checks.py"
    code.write_text(
        "def check_new(self):\n    return CheckResult('gpu_temperature', WARN, 'hot')\n"
        "def run(self):\n    return [('other_check', self.check_other)]\n",
        encoding="utf-8",
    )
    assert preflight_check_ids([code]) == {"gpu_temperature", "other_check"}


@pytest.mark.parametrize("kind", ["preflight", "gate"])
def test_every_check_has_a_troubleshooting_entry(kind: str) -> None:
    ids = preflight_check_ids() if kind == "preflight" else gate_check_ids()
    documented = anchors(TROUBLESHOOTING)
    missing = sorted(ids - documented)
    assert not missing, (
        f"docs/TROUBLESHOOTING.md has no entry for the {kind} check(s) {', '.join(missing)}: add a heading "
        "named exactly as the check's ID (e.g. '### memory_fit') with what it means, the usual causes and "
        "what to change"
    )


def test_the_known_problems_have_their_entries() -> None:
    missing = sorted(set(KNOWN_PROBLEMS) - anchors(TROUBLESHOOTING))
    assert not missing, f"docs/TROUBLESHOOTING.md lost the entries {', '.join(missing)}"


def test_every_relative_link_resolves() -> None:
    problems = [problem for doc in DOCS for problem in broken_links(doc)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_links_every_roles_variables_table() -> None:
    readme = ROOT / "README.md"
    links = set(relative_links(readme))
    roles = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
    missing = [role for role in roles if f"roles/{role}/README.md#variables" not in links]
    assert not missing, f"README.md's Variables section lacks a link to the variables table of {', '.join(missing)}"


def test_the_gate_points_each_failed_check_at_its_entry() -> None:
    for info in CATALOGUE:
        link = troubleshooting_link(info.id)
        assert info.what_to_change.endswith(link), info.id
        file_part, _, fragment = link.partition("#")
        assert (ROOT / file_part).exists() and fragment in anchors(ROOT / file_part)


def test_the_link_check_catches_a_broken_link(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## `memory_fit` and more\n", encoding="utf-8")
    doc.write_text(
        "# Page\n\n[ok](other.md#memory_fit-and-more) [self](#page) [gone](missing.md) [bad](other.md#nope)\n"
        "```\n[in code](nowhere.md)\n```\n`[inline](nowhere.md)` [web](https://example.org/x)\n",
        encoding="utf-8",
    )
    found = []
    for target in relative_links(doc):
        file_part, _, fragment = target.partition("#")
        dest = (doc.parent / file_part) if file_part else doc
        if not dest.exists() or (fragment and fragment not in anchors(dest)):
            found.append(target)
    assert found == ["missing.md", "other.md#nope"]
