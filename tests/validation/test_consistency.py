"""The validation's pieces agree: playbook, inventory, bundle spec, model folder and tokenizer script."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from classroom_validation.bundle.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
GROUP_VARS = ROOT / "inventories" / "gpu-validation" / "group_vars" / "gpu_validation"
SPEC = ROOT / "validation" / "bundles" / "gpu-validation.toml"


def _inventory() -> dict:
    found: dict = {}
    for path in sorted(GROUP_VARS.glob("*.yml")):
        found |= yaml.safe_load(path.read_text())
    return found


def test_every_validation_variable_the_playbook_reads_is_set_in_the_inventory_and_every_one_is_read():
    pattern = re.compile(r"\b(gpu_validation_[a-z_]+)")
    inventory = _inventory()
    used = set(pattern.findall((ROOT / "playbooks" / "validate.yml").read_text()))
    assert used - set(inventory) == set()
    used |= set(pattern.findall(json.dumps(list(inventory.values()))))  # values derived from others
    assert {k for k in inventory if k.startswith("gpu_validation_")} - used == set()


def test_the_bundle_pins_the_vllm_version_the_inventory_renders():
    spec = load_spec(SPEC)
    pins = [r for g in spec.groups for r in g.requirements if r.startswith("vllm==")]
    assert pins == [f"vllm=={_inventory()['vllm_server_version']}"]
    ansible_pin = next(r for g in spec.groups for r in g.requirements if r.startswith("ansible-core=="))
    assert ansible_pin.split("==")[1] == subprocess.run(
        [sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
        capture_output=True, text=True, check=True).stdout.strip()


def test_the_bundle_carries_paths_that_exist():
    spec = load_spec(SPEC)
    for path in [*spec.project, *(m.source for m in spec.models), *(p for g in spec.groups for p in g.local)]:
        assert (ROOT / path).exists(), path
    assert tomllib.loads(SPEC.read_text())["name"] == "gpu-validation"


def test_the_tokenizer_script_rebuilds_the_lab_models_tokenizer_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_tokenizer.py"), "--vocab-size", "4096",
                    "--out", str(tmp_path)], check=True, env={"PATH": "/usr/bin:/bin"})
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tmp_path / name).read_bytes() == (ROOT / "files" / "models" / "classroom-tiny" / name).read_bytes()


def test_the_validation_model_is_gemma_3_4b_shaped():
    config = json.loads((ROOT / "files" / "models" / "gemma-3-4b-shaped" / "config.json").read_text())
    shape = {k: config[k] for k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
                                    "head_dim", "vocab_size", "sliding_window")}
    assert shape == {"num_hidden_layers": 34, "hidden_size": 2560, "num_attention_heads": 8, "num_key_value_heads": 4,
                     "head_dim": 256, "vocab_size": 262208, "sliding_window": 1024}


def _vars(folder: Path) -> dict:
    found: dict = {}
    for path in sorted(folder.glob("*.yml")):
        found |= yaml.safe_load(path.read_text()) or {}
    return found


def test_the_offline_bundles_pin_the_engine_their_inventory_installs():
    inventories = ROOT / "inventories"
    for spec_name, folder in (("classroom-box", inventories / "classroom" / "group_vars" / "all"),
                              ("lab-debian12", inventories / "lab" / "group_vars" / "classroom_boxes")):
        inventory = _vars(folder)
        spec = load_spec(ROOT / "validation" / "bundles" / f"{spec_name}.toml")
        engine = next(g for g in spec.groups if g.name == "engine")
        package = inventory.get("vllm_server_package", "vllm")
        assert engine.requirements == (f"{package}=={inventory['vllm_server_version']}",), spec_name
        assert spec.debs is not None and spec.debs.from_roles, spec_name
        assert all((ROOT / m.source).is_dir() for m in spec.models), spec_name
