"""Shared helpers of the scenario's verify steps (testinfra, run on the controller against the box)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ARCHIVES = "/var/backups/ollama-archive"
INSTANCES = [f"ollama@{i}.service" for i in range(4)]
PORTS = [11435, 11436, 11437, 11438]
FRONTEND = "http://127.0.0.1:11434"
KEY = "molecule-test-key"
HOST = "ollama-archive-box"
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))


def run_json(host, command: str) -> object:
    result = host.run(command)
    assert result.rc == 0, f"{command}: {result.stderr}"
    return json.loads(result.stdout)


def snapshot(host, name: str, api: bool = False) -> dict:
    host.run(f"/usr/local/lib/ollama-archive-test/snapshot.py /root/{name}.json {'--api' if api else ''}")
    return json.loads(host.file(f"/root/{name}.json").content_string)


@pytest.fixture(scope="module")
def before(host) -> dict:
    return json.loads(host.file("/root/snapshot-before.json").content_string)


@pytest.fixture(scope="module")
def archive(host) -> str:
    folders = host.run(f"ls -1 {ARCHIVES}").stdout.split()
    assert folders, f"no archive in {ARCHIVES}"
    return f"{ARCHIVES}/{sorted(folders)[0]}"


@pytest.fixture(scope="module")
def manifest(host, archive) -> dict:
    return json.loads(host.file(f"{archive}/MANIFEST.json").content_string)
