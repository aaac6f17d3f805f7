"""The admin's HAProxy config: what serves Ollama, and the gateway data that retires it."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
from ansible.module_utils.ollama_archive_haproxy import (
    Successor,
    bind_client_url,
    bind_port,
    parse,
    retire,
    servers,
)
from ansible.module_utils.ollama_archive_units import parse_ollama_host

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = [parse_ollama_host(f"127.0.0.1:{port}") for port in (11435, 11436, 11437, 11438)]
REPOINT = Successor("repoint", "vllm", "127.0.0.1:8000", "http://box:11434/v1", "classroom-tiny")


def standin_config() -> str:
    """The admin's HAProxy config on the stand-in box (tests/standins/ollama/box/)."""
    return (ROOT / "tests/standins/ollama/box/etc/haproxy/haproxy.cfg").read_text()


def test_sections_and_servers_are_read():
    sections = parse(standin_config())
    kinds = [(s.kind, s.name) for s in sections]
    assert kinds == [("", ""), ("global", ""), ("defaults", ""), ("listen", "stats"), ("frontend", "ollama"),
                     ("backend", "ollama_gpus")]
    backend = sections[-1]
    assert [(s.name, s.address, s.port) for s in servers(backend)] == [
        ("gpu0", "127.0.0.1", 11435), ("gpu1", "127.0.0.1", 11436), ("gpu2", "127.0.0.1", 11437),
        ("gpu3", "127.0.0.1", 11438)]


def test_repoint_keeps_the_address_sends_v1_to_the_successor_and_answers_api():
    plan = retire(standin_config(), INSTANCES, REPOINT)
    assert plan.problems == []
    assert plan.ollama_backends == ["ollama_gpus"]
    assert plan.ollama_frontends == ["ollama"]
    assert len(plan.ollama_servers) == 4
    gw = plan.gateway
    assert "chroot /var/lib/haproxy" in gw["global"]
    assert "timeout client  10m" in gw["defaults"]
    assert len(gw["sections"]) == 1 and gw["sections"][0].startswith("listen stats")
    (frontend,) = gw["frontends"]
    assert frontend["binds"] == ["127.0.0.1:11434"]
    assert frontend["lines"] == ["option http-no-delay"]
    assert frontend["default_backend"] == "vllm"
    (answer,) = frontend["answers"]
    assert (answer["path_prefix"], answer["status"]) == ("/api/", 410)
    error = json.loads(answer["body"])["error"]
    assert "http://box:11434/v1" in error and "classroom-tiny" in error and "'" not in answer["body"]
    assert gw["backends"] == [{"name": "vllm", "mode": "http", "lines": [],
                               "servers": [{"name": "vllm", "address": "127.0.0.1:8000", "options": "check"}]}]
    assert plan.frontend_binds == ["127.0.0.1:11434"]


def test_remove_drops_the_frontend_and_the_backends():
    plan = retire(standin_config(), INSTANCES, Successor("remove", "vllm", "127.0.0.1:8000", "", ""))
    assert plan.gateway["frontends"] == [] and plan.gateway["backends"] == []
    assert [s.split()[0] for s in plan.gateway["sections"]] == ["listen"]


def test_a_mixed_backend_only_loses_its_ollama_servers_and_a_shared_frontend_keeps_its_default():
    text = (
        "frontend www\n  bind :80\n  use_backend ollama if { path_beg /api }\n  default_backend web\n"
        "backend ollama\n  server o1 127.0.0.1:11435\n"
        "backend web\n  server w1 10.0.0.9:8080\n  server o2 localhost:11436 check\n"
    )
    plan = retire(text, INSTANCES, REPOINT)
    assert plan.ollama_backends == ["ollama"] and plan.mixed_backends == ["web"]
    (frontend,) = plan.gateway["frontends"]
    assert frontend["default_backend"] == "web"
    assert frontend["routes"] == [{"path_prefix": "/v1/", "backend": "vllm"}]
    assert "use_backend ollama" not in " ".join(frontend["lines"])
    (web,) = plan.gateway["sections"]
    assert "w1 10.0.0.9:8080" in web and "11436" not in web
    remove = retire(text, INSTANCES, Successor("remove", "vllm", "127.0.0.1:8000", "", ""))
    assert remove.gateway["frontends"][0]["default_backend"] == "web"
    assert remove.gateway["frontends"][0]["answers"] == []


def test_a_listen_section_serving_ollama_becomes_a_frontend():
    text = "listen ollama\n  bind *:11434\n  balance roundrobin\n  option httpchk GET /\n  timeout server 5m\n" \
           "  server a 127.0.0.1:11435 check\n  server b 127.0.0.1:11436 check\n"
    plan = retire(text, INSTANCES, REPOINT)
    (frontend,) = plan.gateway["frontends"]
    assert frontend["lines"] == ["timeout server 5m", "option http-no-delay"]
    assert frontend["default_backend"] == "vllm"
    assert bind_client_url(plan.frontend_binds[0]) == "http://127.0.0.1:11434"


def test_a_successor_name_that_is_taken_is_a_problem():
    text = "frontend f\n  bind :11434\n  default_backend o\nbackend o\n  server a 127.0.0.1:11435\n" \
           "backend vllm\n  server x 10.0.0.1:1\n"
    assert "already has a backend named vllm" in retire(text, INSTANCES, REPOINT).problems[0]


@pytest.mark.parametrize(("bind", "port", "url"), [
    ("127.0.0.1:11434", 11434, "http://127.0.0.1:11434"),
    (":11434", 11434, "http://127.0.0.1:11434"),
    ("*:443 ssl crt /etc/haproxy/site.pem", 443, "https://127.0.0.1:443"),
    ("[::1]:8080", 8080, "http://[::1]:8080"),
])
def test_bind_addresses(bind, port, url):
    assert bind_port(bind) == port
    assert bind_client_url(bind) == url


def test_the_gateway_template_renders_the_retired_config():
    gw = retire(standin_config(), INSTANCES, REPOINT).gateway
    source = (ROOT / "roles/gateway/templates/haproxy.cfg.j2").read_text()
    env = jinja2.Environment(trim_blocks=True)
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    rendered = env.from_string(source).render(
        ansible_managed="Ansible managed", __gateway_marker="# Written by the gateway role (Classroom Cluster).",
        gateway_global=gw["global"], gateway_defaults=gw["defaults"], gateway_sections=gw["sections"],
        gateway_frontends=gw["frontends"], gateway_backends=gw["backends"])
    assert "frontend ollama\n    bind 127.0.0.1:11434\n    mode http\n    option http-no-delay\n" in rendered
    assert "http-request return status 410 content-type \"application/json\" string '{\"error\":" in rendered
    assert "if { path_beg /api/ }\n    default_backend vllm\n" in rendered
    assert "backend vllm\n    mode http\n    server vllm 127.0.0.1:8000 check\n" in rendered
    assert "listen stats\n\tbind 127.0.0.1:8404" in rendered
    assert ":11435" not in rendered
