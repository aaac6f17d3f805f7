"""Each role's defaults/main.yml and README variables table agree with its meta/argument_specs.yml.

The spec is the one source; `make docs` (scripts/role_vars.py --write) regenerates the other two.
These tests run its --check for every role under roles/ and prove that the check fails on drift.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.roles.conftest import ROOT, load_role_vars

ROLES = load_role_vars().role_dirs(ROOT)


def _listing(findings: list[object]) -> str:
    return "\n".join(f"  {finding}" for finding in findings)


def _copy_role(name: str, dest: Path) -> Path:
    """The parts of a role the generator reads: spec, defaults, README."""
    src = ROOT / "roles" / name
    role = dest / name
    for part in ("meta", "defaults"):
        shutil.copytree(src / part, role / part)
    shutil.copy(src / "README.md", role / "README.md")
    return role


def test_roles_are_found():
    assert {"vllm_server", "concurrency_probe", "gpu_preflight"} <= {r.name for r in ROLES}


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_generated_files_match_the_spec(role_vars, role):
    findings = role_vars.check_role(role)
    assert not findings, (
        f"{role.name}: defaults/main.yml or README.md disagree with meta/argument_specs.yml "
        f"(fix the spec where needed, then run `make docs`):\n{_listing(findings)}"
    )


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_each_variable_is_written_once_in_the_spec(role):
    """Entry points that share options share one block (YAML anchor and merge key), not a copy."""
    spec = role / "meta" / "argument_specs.yml"
    if not spec.is_file():
        pytest.skip(f"{role.name} has no meta/argument_specs.yml (test_generated_files_match_the_spec reports it)")
    keys = re.findall(r"^\s+([a-z][a-z0-9_]*):\s*(?:#.*)?$", spec.read_text(encoding="utf-8"), re.MULTILINE)
    public = [k for k in keys if k.startswith(f"{role.name}_")]
    repeated = sorted({k for k in public if public.count(k) > 1})
    assert not repeated, f"{spec.relative_to(ROOT)} describes these more than once: {', '.join(repeated)}"


def test_render_entry_point_shares_main_options():
    spec_path = ROOT / "roles" / "vllm_server" / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(spec_path.read_text(encoding="utf-8"))["argument_specs"]
    main, render = specs["main"]["options"], specs["render"]["options"]
    assert set(render) - set(main) == {"vllm_server_render_dir"}
    assert all(render[name] == main[name] for name in main)
    assert "<<: *vllm_server_options" in spec_path.read_text(encoding="utf-8")


def test_check_fails_on_a_variable_only_in_defaults(role_vars, tmp_path, capsys):
    role = _copy_role("gpu_preflight", tmp_path)
    assert role_vars.check_role(role) == []
    defaults = role / "defaults" / "main.yml"
    with defaults.open("a", encoding="utf-8") as out:
        out.write("gpu_preflight_surprise: 1\n")

    findings = role_vars.check_role(role)
    assert [f.message for f in findings] == [
        "sets gpu_preflight_surprise, which meta/argument_specs.yml does not declare: add it to the spec "
        "(type, description, default: 1), then run `make docs`"
    ]
    assert findings[0].path.endswith("gpu_preflight/defaults/main.yml")

    assert role_vars.main(["--check", str(role)]) == 1
    err = capsys.readouterr().err
    assert "problem(s) in gpu_preflight" in err
    assert "gpu_preflight_surprise, which meta/argument_specs.yml does not declare" in err

    # --write keeps a variable it does not know rather than dropping it.
    assert role_vars.main(["--write", str(role)]) == 1
    assert "gpu_preflight_surprise: 1" in defaults.read_text(encoding="utf-8")
    assert "so that gpu_preflight_surprise is not lost" in capsys.readouterr().out


def test_check_fails_on_a_default_edited_by_hand(role_vars, tmp_path):
    role = _copy_role("gpu_preflight", tmp_path)
    defaults = role / "defaults" / "main.yml"
    text = defaults.read_text(encoding="utf-8")
    defaults.write_text(text.replace("gpu_preflight_service_port: 8000\n", "gpu_preflight_service_port: 8001\n"))
    assert [f.message for f in role_vars.check_role(role)] == [
        "gpu_preflight_service_port is 8001, the spec's default is 8000"
    ]


def test_check_fails_on_an_undocumented_variable(role_vars, tmp_path):
    role = _copy_role("gpu_preflight", tmp_path)
    spec = role / "meta" / "argument_specs.yml"
    spec.write_text(
        spec.read_text(encoding="utf-8") + "      gpu_preflight_new:\n        type: int\n        default: 3\n"
    )
    assert sorted(f.message for f in role_vars.check_role(role)) == [
        "gpu_preflight_new has no description (undocumented)",
        "gpu_preflight_new is not in the variables table (undocumented)",
        "lacks gpu_preflight_new (the spec's default: 3)",
    ]


def test_check_fails_on_a_stale_comment(role_vars, tmp_path):
    role = _copy_role("gpu_preflight", tmp_path)
    defaults = role / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text(encoding="utf-8").replace("# Write the summary", "# Writes the summary"))
    assert [f.message for f in role_vars.check_role(role)] == ["is out of date (comments or layout): run `make docs`"]


def test_check_fails_when_entry_points_disagree(role_vars, tmp_path):
    role = _copy_role("gpu_preflight", tmp_path)
    spec = role / "meta" / "argument_specs.yml"
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    copy = dict(data["argument_specs"]["main"])
    copy["options"] = {**copy["options"], "gpu_preflight_students": {"type": "int", "default": 30, "description": "x"}}
    data["argument_specs"]["other"] = copy
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    messages = [f.message for f in role_vars.check_role(role)]
    assert any("gpu_preflight_students differs between entry points main and other" in m for m in messages), messages


def test_write_regenerates_from_the_spec_and_keeps_the_prose(role_vars, tmp_path):
    role = _copy_role("gpu_preflight", tmp_path)
    spec = role / "meta" / "argument_specs.yml"
    readme = role / "README.md"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(
        text.replace("default: 24\n", "default: 30\n").replace(
            "Students expected to send requests at the same time.", "Students working at the same time."
        )
    )
    before = readme.read_text(encoding="utf-8")
    assert role_vars.main(["--write", str(role)]) == 0
    assert role_vars.check_role(role) == []
    defaults = (role / "defaults" / "main.yml").read_text(encoding="utf-8")
    assert "# Students working at the same time.\ngpu_preflight_students: 30\n" in defaults
    after = readme.read_text(encoding="utf-8")
    assert "| `gpu_preflight_students` | int | `30` | Students working at the same time. |" in after
    begin, end = role_vars.BEGIN, role_vars.END
    assert before.split(begin)[0] == after.split(begin)[0]
    assert before.split(end)[1] == after.split(end)[1]


def test_readme_without_markers_is_reported(role_vars, tmp_path):
    role = _copy_role("gpu_preflight", tmp_path)
    readme = role / "README.md"
    readme.write_text("# gpu_preflight\n\nProse only.\n")
    messages = [f.message for f in role_vars.check_role(role)]
    assert len(messages) == 1 and messages[0].startswith("has no generated variables table"), messages
    assert role_vars.main(["--write", str(role)]) == 0
    assert readme.read_text(encoding="utf-8").startswith("# gpu_preflight\n\nProse only.\n\n## Variables\n")


@pytest.mark.parametrize(
    "value",
    [
        "off",
        "yes",
        "null",
        "~",
        "0.26.0",
        "127.0.0.1",
        "",
        "{{ x }}/y",
        "a: b",
        "#c",
        "- x",
        "http://h:1/p",
        "1e3",
        "é",
        'say "hi"',
        "back\\slash",
        1,
        0,
        1.5,
        10.0,
        True,
        False,
        None,
    ],
)
def test_scalars_read_back_as_written(role_vars, value):
    for flow in (False, True):
        text = role_vars.yaml_scalar(value, flow=flow)
        loaded = yaml.safe_load(f"k: [{text}]" if flow else f"k: {text}")
        assert role_vars.same(loaded, {"k": [value] if flow else value}), (value, text)


def test_long_collections_are_written_as_blocks(role_vars):
    value = {"pass_config": {"fuse_allreduce_rms": False}, "items": [f"entry-number-{i}" for i in range(12)]}
    lines = role_vars.yaml_entry("x_config", value)
    assert lines[0] == "x_config:"
    assert yaml.safe_load("\n".join(lines)) == {"x_config": value}


def test_a_new_role_is_generated_from_its_spec_alone(role_vars, tmp_path):
    role = tmp_path / "demo_app"
    (role / "meta").mkdir(parents=True)
    (role / "meta" / "argument_specs.yml").write_text(
        """argument_specs:
  main:
    short_description: Demo
    options:
      demo_app_path:
        type: str
        required: true
        description: Where it goes.
      demo_app_mode:
        type: str
        choices: [fast, "off"]
        default: "off"
        description: How it runs.
      demo_app_extra:
        type: dict
        default: {a: 1}
        description: Extra settings.
""",
        encoding="utf-8",
    )
    assert role_vars.main(["--write", str(role)]) == 0
    assert role_vars.check_role(role) == []
    defaults = (role / "defaults" / "main.yml").read_text(encoding="utf-8")
    assert yaml.safe_load(defaults) == {"demo_app_mode": "off", "demo_app_extra": {"a": 1}}
    assert "# demo_app_path: no default (required; set it in the inventory)" in defaults
    readme = (role / "README.md").read_text(encoding="utf-8")
    assert "| `demo_app_path` | str | required | Where it goes. |" in readme
    assert '| `demo_app_mode` | str | `"off"` | How it runs. Choices: `fast`, `"off"`. |' in readme
