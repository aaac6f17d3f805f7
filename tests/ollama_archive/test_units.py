"""Units that run `ollama serve`: systemctl show, environment files, OLLAMA_HOST, masks, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils.ollama_archive_units import (
    OllamaHost,
    effective_environment,
    mask_kind,
    ollama_binary,
    ollama_command,
    parse_env_file,
    parse_environment_property,
    parse_exec,
    parse_ollama_host,
    parse_show,
    redact_environment,
    redact_unit_text,
    retired_by_dropin,
    runs_ollama_serve,
    unit_kind,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def recorded(name: str) -> str:
    return "".join(line for line in (FIXTURES / name).read_text().splitlines(keepends=True)
                   if not line.startswith("# "))


def test_show_blocks_are_read_in_any_property_order():
    units = {u.name: u for u in parse_show(recorded("systemctl-show-sleep.txt"))}
    assert sorted(units) == ["ollama.service", "ollama@0.service", "ollama@1.service"]
    zero = units["ollama@0.service"]
    assert zero.fragment_path == "/etc/systemd/system/ollama@.service"
    assert zero.drop_in_paths == ["/etc/systemd/system/ollama@0.service.d/m.conf"]
    assert zero.exec_start == [["/usr/bin/sleep", "infinity", "serve"]]
    assert zero.environment == {"OLLAMA_MODELS": "/x", "A": "b c"}
    assert [(r.path, r.ignore_errors) for r in zero.environment_files] == [("/etc/ollama/0.env", False)]
    assert (zero.load_state, zero.active_state, zero.unit_file_state) == ("loaded", "failed", "enabled")
    assert units["ollama@1.service"].unit_file_state == "disabled"
    assert units["ollama.service"].environment == {}
    # The recording ran sleep, not ollama: nothing there runs `ollama serve`.
    assert not any(runs_ollama_serve(u) for u in units.values())


def test_the_standin_box_units_run_ollama_serve():
    units = {u.name: u for u in parse_show(recorded("systemctl-show-standin.txt"))}
    ollama = sorted(name for name, unit in units.items() if runs_ollama_serve(unit))
    assert ollama == ["ollama.service", *(f"ollama@{i}.service" for i in range(4))]
    three = units["ollama@3.service"]
    # Recorded after a rollback: the restore's OLLAMA_NOPRUNE drop-in is there too.
    assert three.drop_in_paths == ["/etc/systemd/system/ollama@3.service.d/90-ollama-archive-noprune.conf",
                                   "/etc/systemd/system/ollama@3.service.d/models.conf",
                                   "/etc/systemd/system/ollama@.service.d/override.conf"]
    assert three.environment["OLLAMA_MODELS"] == "/srv/ollama/models-gpu3"
    assert three.environment["OLLAMA_NOPRUNE"] == "1"
    assert three.environment["OLLAMA_KEEP_ALIVE"] == "10m"
    assert [r.path for r in three.environment_files] == ["/etc/ollama/instance-3.env"]
    assert three.main_pid > 0 and three.user == "ollama"
    assert ollama_binary(three) == "/usr/local/bin/ollama"
    haproxy = units["haproxy.service"]
    assert haproxy.exec_start and not runs_ollama_serve(haproxy)
    # A property systemctl prints once per value.
    assert [(r.path, r.ignore_errors) for r in haproxy.environment_files] == [
        ("/etc/default/haproxy", True), ("/etc/sysconfig/haproxy", True)]
    assert haproxy.environment["EXTRAOPTS"] == "-S /run/haproxy-master.sock"
    plain = units["ollama.service"]
    assert (plain.active_state, plain.unit_file_state, plain.main_pid) == ("inactive", "disabled", 0)


@pytest.mark.parametrize(
    ("argv", "found"),
    [
        (["/usr/local/bin/ollama", "serve"], ["/usr/local/bin/ollama", "serve"]),
        (["/usr/bin/env", "OLLAMA_HOST=0.0.0.0", "/opt/ollama/bin/ollama", "serve"],
         ["/opt/ollama/bin/ollama", "serve"]),
        (["/bin/sh", "-c", "exec /usr/local/bin/ollama serve"], ["/usr/local/bin/ollama", "serve"]),
        (["/bin/bash", "-c", "sleep 2 && ollama serve 2>&1"], ["ollama", "serve", "2>&1"]),
        (["/usr/local/bin/ollama", "run", "gemma3"], None),
        (["/usr/bin/python3", "/srv/ollama-proxy.py", "serve"], None),
    ],
)
def test_ollama_serve_is_found_behind_env_and_shells(argv, found):
    assert ollama_command(argv) == found


def test_exec_start_with_several_commands():
    value = ("{ path=/bin/true ; argv[]=/bin/true ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; "
             "code=(null) ; status=0/0 } ; { path=/usr/local/bin/ollama ; argv[]=/usr/local/bin/ollama serve ; "
             "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }")
    assert parse_exec(value) == [["/bin/true"], ["/usr/local/bin/ollama", "serve"]]


def test_environment_files_are_read_as_systemd_reads_them():
    text = (
        "# comment\n"
        "; another comment\n"
        "OLLAMA_HOST=127.0.0.1:11435\n"
        "export CUDA_VISIBLE_DEVICES=0\n"
        "OLLAMA_MODELS=\"/srv/models with space\"\n"
        "OLLAMA_ORIGINS='*'\n"
        "OLLAMA_KEEP_ALIVE = 10m\n"
        "LONG=first \\\nsecond\n"
        "not an assignment\n"
        "1BAD=x\n"
    )
    assert parse_env_file(text) == {
        "OLLAMA_HOST": "127.0.0.1:11435",
        "CUDA_VISIBLE_DEVICES": "0",
        "OLLAMA_MODELS": "/srv/models with space",
        "OLLAMA_ORIGINS": "*",
        "OLLAMA_KEEP_ALIVE": "10m",
        "LONG": "first second",
    }


def test_environment_files_override_environment_lines_in_order():
    (unit,) = parse_show(
        "Id=ollama@2.service\nEnvironment=OLLAMA_HOST=0.0.0.0 OLLAMA_NUM_PARALLEL=2\n"
        "EnvironmentFiles=/a.env (ignore_errors=no)\nEnvironmentFiles=/b.env (ignore_errors=yes)\n"
        "EnvironmentFiles=/c.env (ignore_errors=no)\n"
    )
    env, problems = effective_environment(unit, {"/a.env": "OLLAMA_HOST=127.0.0.1:1\nX=1\n", "/b.env": None,
                                                 "/c.env": None})
    assert env == {"OLLAMA_HOST": "127.0.0.1:1", "OLLAMA_NUM_PARALLEL": "2", "X": "1"}
    # A missing optional file (EnvironmentFile=-...) is fine; a missing required one is named.
    assert problems == ["ollama@2.service: EnvironmentFile /c.env cannot be read"]


def test_environment_property_keeps_quoted_values():
    assert parse_environment_property('"PATH=/usr/local/bin:/usr/bin" OLLAMA_DEBUG=1 "A=b c"') == {
        "PATH": "/usr/local/bin:/usr/bin", "OLLAMA_DEBUG": "1", "A": "b c"}


@pytest.mark.parametrize(
    ("value", "host", "port", "url"),
    [
        (None, "127.0.0.1", 11434, "http://127.0.0.1:11434"),
        ("0.0.0.0", "0.0.0.0", 11434, "http://127.0.0.1:11434"),
        (":11435", "", 11435, "http://127.0.0.1:11435"),
        ("127.0.0.1:11436", "127.0.0.1", 11436, "http://127.0.0.1:11436"),
        ("http://10.1.2.3", "10.1.2.3", 80, "http://10.1.2.3:80"),
        ("[::]:11437", "::", 11437, "http://[::1]:11437"),
        ("127.0.0.1:99999", "127.0.0.1", 11434, "http://127.0.0.1:11434"),
    ],
)
def test_ollama_host_as_ollama_reads_it(value, host, port, url):
    parsed = parse_ollama_host(value)
    assert (parsed.host, parsed.port, parsed.url) == (host, port, url)


def test_which_haproxy_servers_reach_an_instance():
    everywhere = OllamaHost("http", "0.0.0.0", 11435)
    loopback = OllamaHost("http", "127.0.0.1", 11436)
    assert everywhere.serves("10.0.0.5", 11435) and everywhere.serves("127.0.0.1", 11435)
    assert loopback.serves("localhost", 11436) and loopback.serves("127.0.0.1", 11436)
    assert not loopback.serves("10.0.0.5", 11436)
    assert not loopback.serves("127.0.0.1", 11435)


def test_kinds_and_masks():
    assert unit_kind("ollama@3.service") == "template-instance"
    assert unit_kind("ollama.service") == "plain"
    assert unit_kind("llm-gpu0.service") == "custom"
    assert mask_kind("ollama.service", "/etc/systemd/system/ollama.service") == "drop-in"
    assert mask_kind("ollama@0.service", "/etc/systemd/system/ollama@.service") == "persistent"
    assert mask_kind("ollama.service", "/usr/lib/systemd/system/ollama.service") == "persistent"
    (unit,) = parse_show("Id=ollama.service\nDropInPaths=/etc/systemd/system/ollama.service.d/"
                         "99-ollama-archive-retired.conf\n")
    assert retired_by_dropin(unit)


def test_secrets_never_reach_the_manifest():
    env = {"HF_TOKEN": "hf_abc", "HTTPS_PROXY": "http://user:pw@proxy:3128", "OLLAMA_HOST": "0.0.0.0"}
    assert redact_environment(env) == {"HF_TOKEN": "<redacted>", "HTTPS_PROXY": "http://<redacted>@proxy:3128",
                                       "OLLAMA_HOST": "0.0.0.0"}
    text = ('[Service]\nEnvironment="OLLAMA_API_KEY=s3cret" "OLLAMA_HOST=0.0.0.0"\n'
            "ExecStart=/usr/local/bin/ollama serve\n")
    redacted = redact_unit_text(text)
    assert "s3cret" not in redacted
    assert "OLLAMA_HOST=0.0.0.0" in redacted and "ExecStart=/usr/local/bin/ollama serve" in redacted
