"""The probe's modules flow one way: no module imports a later stage, and none import each other in a circle.

The stages are declared in classroom_probe/stages.py; the imports are read from each module's source."""

import ast
from pathlib import Path

import classroom_probe
from classroom_probe.stages import STAGES

PACKAGE = Path(classroom_probe.__file__).parent
NAME = "classroom_probe"


def modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PACKAGE.glob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Modules of the package that `path` imports, at any depth (lazy imports in functions included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == NAME:
                    out.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == NAME:
            parts = node.module.split(".")
            if len(parts) > 1:
                out.add(parts[1])
            else:  # from classroom_probe import x: a module where x is one, else the package's __init__
                out.update(a.name if a.name in known else "__init__" for a in node.names)
    return out - {path.stem}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_every_module_has_a_stage() -> None:
    declared = [m for _, mods in STAGES for m in mods]
    assert len(declared) == len(set(declared)), "a module is declared in two stages"
    assert sorted(declared) == sorted(modules()), "declare each module of the package in stages.py, once"


def test_no_module_imports_a_later_stage_or_in_a_circle() -> None:
    g = graph()
    rank = {m: i for i, (_, mods) in enumerate(STAGES) for m in mods}
    later = sorted(f"{a} ({STAGES[rank[a]][0]}) imports {b} ({STAGES[rank[b]][0]})"
                   for a, deps in g.items() for b in deps if rank[b] > rank[a])
    assert not later, "\n".join(later)
    cycle = find_cycle(g)
    assert cycle is None, " -> ".join(cycle or [])
    print(f"\n{len(g)} modules, {sum(len(d) for d in g.values())} imports, no cycle, no import of a later stage:")
    for stage, mods in STAGES:
        print(f"  {stage}: " + "; ".join(f"{m} <- {', '.join(sorted(g[m])) or '-'}" for m in mods))


def test_the_check_sees_every_import_form_and_finds_cycles(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from classroom_probe import svg, SCHEMA_VERSION\nimport classroom_probe.runner\n"
                 "def late() -> None:\n    from classroom_probe.cli import main\n")
    assert imports_of(f, {"svg", "runner", "cli"}) == {"svg", "__init__", "runner", "cli"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
