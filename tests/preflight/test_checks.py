"""The checks and the evaluate module's summary, fed with facts parsed from real transcripts."""

from __future__ import annotations

import shlex
from dataclasses import asdict

import gpu_preflight_gpu_facts as gpu_facts_module
import pytest
from ansible.module_utils.gpu_preflight_checks import cuda_for_vllm, driver_minimum_for_cuda, version_tuple
from ansible.module_utils.gpu_preflight_smi import classify_failure, parse_compute_apps, parse_query_gpu, parse_topology
from gpu_preflight_evaluate import evaluate

from tests.support.nvidia_smi import TRANSCRIPTS, answers, output

GIB = 1024**3


def settings(**overrides):
    values = dict(
        profile="gpu",
        model="google/gemma-3-4b-it",
        tensor_parallel_size=2,
        pipeline_parallel_size=1,
        data_parallel_size=1,
        dtype="auto",
        kv_cache_dtype="auto",
        max_model_len=8192,
        students=24,
        gpu_memory_utilization=0.9,
        max_num_batched_tokens=0,
        max_num_seqs=0,
        activation_reserve_gib=1.5,
        vllm_version="0.33.0",
        cuda_version="",
        python_versions=["3.10", "3.11", "3.12", "3.13"],
        min_free_disk_gib=40,
        min_nofile=65535,
        service_port=8000,
        ollama_archive_in_play=False,
        ollama_process_names=["ollama", "llama-server", "ollama_llama_server"],
        service_user="vllm",
    )
    values.update(overrides)
    return values


def gpu_facts(host="h200x2", query="query.txt", apps="apps.txt", **overrides):
    facts = dict(
        present=True,
        driver_loaded=True,
        error="",
        driver_version="580.159.04",
        cuda_version="13.0",
        gpus=[asdict(gpu) for gpu in parse_query_gpu(output(f"{host}/{query}"))],
        topology=parse_topology(output(f"{host}/topo.txt")).to_dict(),
        compute_apps=[asdict(app) for app in parse_compute_apps(output(f"{host}/{apps}"))],
    )
    facts.update(overrides)
    return facts


def host_facts(**overrides):
    facts = dict(
        python={"executable": "/usr/bin/python3", "version": "3.12.3", "error": ""},
        disk={"path": "/opt/vllm/venv", "checked_at": "/", "free_bytes": 128 * GIB},
        port={"port": 8000, "listening": False, "owners": []},
        nofile={"soft": 1024, "hard": 524288},
    )
    facts.update(overrides)
    return facts


def run(known_models, driver_table, *, s=None, g=None, h=None, config=None, config_path=""):
    return evaluate(
        dict(
            settings=s or settings(),
            gpu_facts=gpu_facts() if g is None else g,
            host_facts=h or host_facts(),
            model_config=config or {},
            model_config_path=config_path,
            known_models=known_models,
            driver_table=driver_table,
        )
    )


def statuses(summary):
    return {check["name"]: check["status"] for check in summary["checks"]}


def test_h200x2_real_facts_pass(known_models, driver_table):
    summary = run(known_models, driver_table)
    assert summary["verdict"] == "pass", summary["table"]
    # cutover_memory applies to the live cut-over only (ollama_archive_cutover: live).
    assert {name for name, status in statuses(summary).items() if status != "pass"} == {"cutover_memory"}
    assert summary["estimate"]["predicted_max_sequences"] >= 200
    assert summary["message"] == ""


def test_h100_python3_holding_memory_warns_and_is_listed(known_models, driver_table):
    summary = run(
        known_models,
        driver_table,
        s=settings(tensor_parallel_size=1, gpu_memory_utilization=0.75),
        g=gpu_facts("h100", "load/query.txt", "load/apps.txt"),
    )
    check = next(c for c in summary["checks"] if c["name"] == "gpu_memory_free")
    assert check["status"] == "warn"
    assert "python3 (pid 536) 15300 MiB" in check["measured"]


def test_h100_python3_holding_memory_fails_at_default_utilisation(known_models, driver_table):
    # 81559 - 15309 MiB free is less than 0.9 x 81559: vLLM would refuse to start.
    summary = run(
        known_models,
        driver_table,
        s=settings(tensor_parallel_size=1),
        g=gpu_facts("h100", "load/query.txt", "load/apps.txt"),
    )
    assert statuses(summary)["gpu_memory_free"] == "fail"
    assert "Free memory on device" in summary["message"]


def ollama_facts():
    facts = gpu_facts("h100", "load/query.txt", "load/apps.txt")
    facts["compute_apps"][0]["process_name"] = "/usr/local/bin/ollama"
    return facts


def test_ollama_runner_fails_without_the_archive(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=1), g=ollama_facts())
    assert statuses(summary)["gpu_memory_free"] == "fail"
    assert "Ollama runner holds GPU memory" in summary["message"]
    assert "gpu_preflight_ollama_archive_in_play" in summary["message"]


def test_ollama_runner_warns_with_the_archive_and_its_memory_is_not_counted(known_models, driver_table):
    summary = run(
        known_models, driver_table, s=settings(tensor_parallel_size=1, ollama_archive_in_play=True), g=ollama_facts()
    )
    assert statuses(summary)["gpu_memory_free"] == "warn"
    assert statuses(summary)["memory_fit"] == "pass"
    assert summary["verdict"] == "warn"


def test_no_driver_fails_and_skips_gpu_checks(known_models, driver_table):
    error = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    summary = run(known_models, driver_table, g={"present": True, "driver_loaded": False, "error": error})
    result = statuses(summary)
    assert result["nvidia_smi"] == "fail"
    assert {result[n] for n in ("driver_version", "gpu_count", "dtype", "memory_fit", "interconnect")} == {"skip"}
    assert result["model_shape"] == "pass"
    assert summary["failed"] == ["nvidia_smi"]
    assert "couldn't communicate with the NVIDIA driver" in summary["message"]


def test_missing_nvidia_smi(known_models, driver_table):
    summary = run(known_models, driver_table, g={"present": False})
    assert "nvidia-smi not found" in summary["message"]


def test_old_driver_fails_for_cuda13_build(known_models, driver_table):
    facts = gpu_facts(driver_version="570.124.06")
    summary = run(known_models, driver_table, g=facts)
    assert statuses(summary)["driver_version"] == "fail"
    assert "580.65.06" in summary["message"]


def test_vllm_026_passes_on_the_h200_driver(known_models, driver_table):
    # The driver the recorded H200 box reports (it ran vLLM 0.26.0 with torch 2.11.0+cu130).
    driver = output("h200x2/version.txt").split("DRIVER version")[1].split(":")[1].split()[0]
    assert driver == "580.159.04"
    summary = run(known_models, driver_table, s=settings(vllm_version="0.26.0"), g=gpu_facts(driver_version=driver))
    check = next(c for c in summary["checks"] if c["name"] == "driver_version")
    assert check["status"] == "pass", check
    assert "vLLM 0.26.0 wheel needs CUDA 13.0" in check["measured"]


def test_vllm_026_fails_on_a_570_driver(known_models, driver_table):
    summary = run(
        known_models, driver_table, s=settings(vllm_version="0.26.0"), g=gpu_facts(driver_version="570.124.06")
    )
    assert statuses(summary)["driver_version"] == "fail"
    assert "580.65.06" in summary["message"]


def test_cuda12_build_on_minor_compat_driver_warns(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(cuda_version="12.9"), g=gpu_facts(driver_version="550.54.15"))
    assert statuses(summary)["driver_version"] == "warn"


def test_unknown_vllm_version_asks_for_cuda_version(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(vllm_version="0.25.0"))
    check = next(c for c in summary["checks"] if c["name"] == "driver_version")
    assert check["status"] == "warn"
    assert "gpu_preflight_cuda_version" in check["remediation"]


def test_driver_table_lookups(driver_table):
    assert cuda_for_vllm("0.33.0+cu130", driver_table)["cuda"] == "13.0"
    assert cuda_for_vllm("0.6.3.post1", driver_table)["cuda"] == "12.1"
    assert cuda_for_vllm("0.25.0", driver_table) is None
    assert cuda_for_vllm("0.26.0", driver_table)["cuda"] == "13.0"
    assert cuda_for_vllm("0.27.0", driver_table) is None
    assert driver_minimum_for_cuda("13.0", driver_table)["min_driver"] == "580.65.06"
    assert version_tuple("v0.33.0rc1") == (0, 33, 0)


def test_gpu_count_too_small(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=2, data_parallel_size=2))
    assert statuses(summary)["gpu_count"] == "fail"
    assert "TP x PP x DP <= 2" in summary["message"]


def test_tp3_fails_naming_heads(known_models, driver_table):
    four = gpu_facts()
    four["gpus"] = four["gpus"] * 2
    for index, gpu in enumerate(four["gpus"]):
        four["gpus"][index] = {**gpu, "index": index, "uuid": f"GPU-{index}"}
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=3), g=four)
    assert statuses(summary)["model_shape"] == "fail"
    assert "8 attention heads are not divisible by tensor_parallel_size 3" in summary["message"]


def t4_facts():
    return gpu_facts(
        gpus=[
            dict(
                index=0,
                name="Tesla T4",
                uuid="GPU-t4",
                pci_bus_id="0:4",
                driver_version="580.95.05",
                memory_total_mib=15360,
                memory_used_mib=0,
                compute_cap="7.5",
            )
        ],
        topology={"gpu_indices": [0], "links": []},
    )


@pytest.mark.parametrize("dtype", ["auto", "float16", "bfloat16"])
def test_gemma_on_t4_fails_with_the_float16_explanation(known_models, driver_table, dtype):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=1, dtype=dtype), g=t4_facts())
    check = next(c for c in summary["checks"] if c["name"] == "dtype")
    assert check["status"] == "fail"
    assert "refuses float16 for model type 'gemma3' (numerical instability)" in check["measured"]
    assert "set dtype float32" in check["remediation"]


def test_gemma_float32_on_t4_passes_dtype_but_not_memory(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=1, dtype="float32"), g=t4_facts())
    assert statuses(summary)["dtype"] == "pass"
    assert statuses(summary)["memory_fit"] == "fail"
    assert "the weights do not fit" in summary["message"]


def test_gemma_float16_fails_even_on_hopper(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(dtype="float16"))
    assert statuses(summary)["dtype"] == "fail"
    assert "set dtype bfloat16" in summary["message"]


def test_llama_bfloat16_on_t4_needs_float16(known_models, driver_table):
    summary = run(
        known_models,
        driver_table,
        s=settings(model="classroom-tiny", tensor_parallel_size=1, dtype="bfloat16"),
        g=t4_facts(),
    )
    assert statuses(summary)["dtype"] == "fail"
    assert "bfloat16 needs compute capability 8.0+" in summary["message"]


def test_llama_auto_on_t4_resolves_to_float16(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(model="classroom-tiny", tensor_parallel_size=1), g=t4_facts())
    check = next(c for c in summary["checks"] if c["name"] == "dtype")
    assert (check["status"], check["measured"]) == ("pass", "dtype auto -> float16 on sm_75")


def pcie_facts(count):
    gpus = [
        dict(
            index=i,
            name="NVIDIA RTX 6000 Ada Generation",
            uuid=f"GPU-{i}",
            pci_bus_id=f"0:{i}",
            driver_version="580.95.05",
            memory_total_mib=49140,
            memory_used_mib=2,
            compute_cap="8.9",
        )
        for i in range(count)
    ]
    links = [dict(a=a, b=b, kind="pcie", label="SYS") for a in range(count) for b in range(a + 1, count)]
    return gpu_facts(gpus=gpus, topology={"gpu_indices": list(range(count)), "links": links})


def test_pcie_tp4_warns_with_the_nccl_pitfall(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=4), g=pcie_facts(4))
    check = next(c for c in summary["checks"] if c["name"] == "interconnect")
    assert check["status"] == "warn"
    assert "custom all-reduce" in check["measured"]
    assert "ACS" in check["remediation"]
    assert "NCCL_P2P_DISABLE=1" in check["remediation"]
    assert summary["verdict"] == "warn"
    assert summary["failed"] == []


def test_pcie_tp2_passes(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=2), g=pcie_facts(4))
    assert statuses(summary)["interconnect"] == "pass"


def test_students_that_do_not_fit_fail(known_models, driver_table):
    summary = run(
        known_models,
        driver_table,
        s=settings(tensor_parallel_size=4, students=5000, max_num_seqs=8192),
        g=pcie_facts(4),
    )
    assert statuses(summary)["memory_fit"] == "fail"
    assert "lower max_model_len" in summary["message"]


def test_max_num_seqs_below_students_warns(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(max_num_seqs=8))
    assert statuses(summary)["memory_fit"] == "warn"


def test_cpu_lab_skips_gpu_checks_explicitly(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(profile="cpu_lab", model="classroom-tiny"), g={})
    result = statuses(summary)
    gpu_checks = (
        "nvidia_smi",
        "driver_version",
        "gpu_count",
        "dtype",
        "memory_fit",
        "gpu_memory_free",
        "cutover_memory",
        "interconnect",
    )
    assert {result[name] for name in gpu_checks} == {"skip"}
    assert {result[name] for name in ("model_shape", "python_version", "disk_space", "service_port", "nofile")} == {
        "pass"
    }
    assert summary["gpu_checks_skipped"]["reason"] == "profile cpu_lab: no GPU expected"
    assert summary["verdict"] == "pass"


def test_cpu_lab_still_checks_the_model_shape(known_models, driver_table):
    summary = run(
        known_models, driver_table, s=settings(profile="cpu_lab", model="classroom-tiny", tensor_parallel_size=3), g={}
    )
    assert summary["failed"] == ["model_shape"]


def test_unknown_model_fails_with_a_fix(known_models, driver_table):
    summary = run(known_models, driver_table, s=settings(model="acme/mystery"))
    assert statuses(summary)["model_shape"] == "fail"
    assert statuses(summary)["memory_fit"] == "skip"
    assert "known-models table" in summary["message"]


@pytest.mark.parametrize(
    ("facts", "check", "status", "text"),
    [
        ({"python": {"executable": "python3", "version": "3.9.2", "error": ""}}, "python_version", "fail", "3.9.2"),
        (
            {"python": {"executable": "python3", "version": None, "error": "not found on PATH"}},
            "python_version",
            "fail",
            "not found on PATH",
        ),
        (
            {"disk": {"path": "/opt/vllm/venv", "checked_at": "/opt", "free_bytes": 10 * GIB}},
            "disk_space",
            "fail",
            "10 GiB free at /opt",
        ),
        (
            {"port": {"port": 8000, "listening": True, "owners": ["python3 (pid 42)"]}},
            "service_port",
            "fail",
            "python3 (pid 42)",
        ),
        ({"nofile": {"soft": 1024, "hard": 20000}}, "nofile", "warn", "hard 20000"),
        ({"nofile": {"soft": None, "hard": None}}, "nofile", "pass", "unlimited"),
    ],
)
def test_host_checks(known_models, driver_table, facts, check, status, text):
    summary = run(known_models, driver_table, h=host_facts(**facts))
    result = next(c for c in summary["checks"] if c["name"] == check)
    assert result["status"] == status
    assert text in result["measured"]


def listener(*processes, socket_users=None):
    """Port facts as the host-facts module reports a listener on 8000."""
    procs = [{"pid": pid, "name": name, "user": user} for pid, name, user in processes]
    users = sorted({user for _, _, user in processes if user}) if socket_users is None else socket_users
    return {"port": 8000, "listening": True, "owners": [], "processes": procs, "socket_users": users}


def port_check(known_models, driver_table, port, **overrides):
    summary = run(known_models, driver_table, s=settings(**overrides), h=host_facts(port=port))
    return next(c for c in summary["checks"] if c["name"] == "service_port")


def test_port_held_by_the_own_vllm_service_passes(known_models, driver_table):
    check = port_check(known_models, driver_table, listener((4242, "vllm", "vllm"), (4250, "python3", "vllm")))
    assert check["status"] == "pass", check
    assert "held by the project's own vLLM service (user vllm)" in check["measured"]
    assert "vllm (pid 4242, user vllm), python3 (pid 4250, user vllm)" in check["measured"]


def test_port_of_the_own_service_passes_without_root(known_models, driver_table):
    # Without root another user's process is unreadable; the socket's uid still names the user.
    port = listener(socket_users=["vllm"])
    check = port_check(known_models, driver_table, port)
    assert check["status"] == "pass", check
    assert "not readable without root" in check["measured"]
    port["unreadable_candidates"] = [{"pid": 4242, "name": "vllm", "user": "vllm"}]
    check = port_check(known_models, driver_table, port)
    assert check["status"] == "pass", check
    assert "its processes: vllm (pid 4242, user vllm)" in check["measured"]


@pytest.mark.parametrize(
    ("port", "overrides", "text"),
    [
        (listener((42, "python3", "alice")), {}, "python3 (pid 42, user alice)"),
        (listener((42, "python3", "vllm"), (43, "nginx", "www-data")), {}, "nginx (pid 43, user www-data)"),
        (listener((42, "python3", "vllm"), socket_users=["root"]), {}, "vllm); socket owned by user root"),
        (listener(socket_users=["alice"]), {}, "socket owned by user alice"),
        (listener((42, "python3", None), socket_users=[]), {}, "python3 (pid 42)"),
        (listener((42, "python3", "vllm")), {"service_user": "svc-vllm"}, "python3 (pid 42, user vllm)"),
        (listener((42, "python3", "vllm")), {"service_user": ""}, "python3 (pid 42, user vllm)"),
        (listener(socket_users=[]), {}, "unknown process"),
    ],
)
def test_port_held_by_anyone_else_fails(known_models, driver_table, port, overrides, text):
    check = port_check(known_models, driver_table, port, **overrides)
    assert check["status"] == "fail", check
    assert check["measured"].startswith("port 8000 already has a listener (")
    assert text in check["measured"]
    assert "own vLLM service" not in check["measured"]


def h100_with_owner(user):
    """The recorded H100 under load (python3, pid 536, 15300 MiB) with that pid's owner."""
    facts = host_facts(gpu_processes=[{"pid": 536, "user": user}])
    return dict(s=settings(tensor_parallel_size=1), g=gpu_facts("h100", "load/query.txt", "load/apps.txt"), h=facts)


def test_gpu_memory_of_the_own_service_is_not_held_by_others(known_models, driver_table):
    summary = run(known_models, driver_table, **h100_with_owner("vllm"))
    check = next(c for c in summary["checks"] if c["name"] == "gpu_memory_free")
    assert check["status"] == "pass", check
    assert "own vLLM service (user vllm) holds GPU0: python3 (pid 536) 15300 MiB" in check["measured"]
    assert "no other processes" in check["measured"]
    assert [app["pid"] for app in check["details"]["own_service_processes"]] == [536]
    assert check["details"]["processes"] == []
    # The memory plan sees the whole GPU again: the budget is 0.9 x 81559 MiB, not total - 15309.
    fit = next(c for c in summary["checks"] if c["name"] == "memory_fit")
    assert fit["details"]["budget_gib_per_gpu"] == pytest.approx(0.9 * 81559 / 1024, abs=0.05)


@pytest.mark.parametrize("user", ["alice", None])
def test_gpu_memory_of_a_foreign_or_unknown_owner_still_fails(known_models, driver_table, user):
    summary = run(known_models, driver_table, **h100_with_owner(user))
    check = next(c for c in summary["checks"] if c["name"] == "gpu_memory_free")
    assert check["status"] == "fail", check
    assert "held by GPU0: python3 (pid 536) 15300 MiB" in check["measured"]
    assert "own vLLM service" not in check["measured"]


def test_failure_message_lists_every_failure_with_its_fix(known_models, driver_table):
    summary = run(
        known_models,
        driver_table,
        s=settings(tensor_parallel_size=3),
        h=host_facts(port={"port": 8000, "listening": True, "owners": []}),
    )
    assert summary["message"].startswith("gpu_preflight: 3 check(s) failed: ")
    for name in ("gpu_count", "model_shape", "service_port"):
        assert f"{name}: " in summary["message"]
    assert summary["message"].count("-- fix: ") == 3


def test_table_lists_each_check_once(known_models, driver_table):
    table = run(known_models, driver_table)["table"]
    assert table[0].split() == ["check", "status", "measured"]
    assert len([line for line in table[1:] if not line.lstrip().startswith("fix:")]) == 13


class FakeModule:
    """Stands in for AnsibleModule: answers run_command from a folder of transcripts."""

    def __init__(self, folder, binary="/usr/bin/nvidia-smi"):
        self.params = {"nvidia_smi": "nvidia-smi"}
        self.binary = binary
        self.answers = answers(folder)
        self.commands = []

    def get_bin_path(self, name):
        return self.binary

    def run_command(self, args, environ_update=None):
        command = shlex.join(["nvidia-smi", *args[1:]])
        self.commands.append(command)
        if command not in self.answers:
            raise AssertionError(f"no transcript for {command}")
        rc, out = self.answers[command]
        return rc, out, ""


@pytest.mark.parametrize("variant", ["h200x2", "rtx6000ada-x4", "t4", "h100-ollama"])
def test_gpu_facts_module_runs_against_every_replay_variant(variant):
    module = FakeModule(TRANSCRIPTS / variant)
    facts = gpu_facts_module.gather(module)
    assert facts["driver_loaded"], facts
    assert facts["cuda_version"] == "13.0"
    assert facts["topology"]["gpu_indices"] == [gpu["index"] for gpu in facts["gpus"]]
    assert len(module.commands) == 4


def test_gpu_facts_module_reports_an_unloaded_driver():
    module = FakeModule(TRANSCRIPTS / "nodriver")
    facts = gpu_facts_module.gather(module)
    assert (facts["present"], facts["driver_loaded"]) == (True, False)
    assert facts["error"].startswith("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver")


def test_gpu_facts_module_without_nvidia_smi():
    facts = gpu_facts_module.gather(FakeModule(TRANSCRIPTS / "nodriver", binary=None))
    assert facts["present"] is False


# -- unknown is not zero, and nvidia-smi's failures are named for what they are ------------------


def na_facts():
    return gpu_facts("h200x2", "../mig-na/query.txt")


def test_na_fields_parse_as_unknown_not_zero():
    gpu0, gpu1 = parse_query_gpu(output("mig-na/query.txt"))
    assert (gpu0.memory_total_mib, gpu0.memory_used_mib, gpu0.compute_cap) == (None, None, None)
    assert gpu0.unknown == ("memory.total", "memory.used", "compute_cap")
    assert gpu1.unknown == ()


def test_na_memory_warns_naming_the_field_and_what_was_not_checked(known_models, driver_table):
    summary = run(known_models, driver_table, g=na_facts())
    checks = {c["name"]: c for c in summary["checks"]}
    free = checks["gpu_memory_free"]
    assert free["status"] == "warn", free
    assert "GPU0: [N/A] of [N/A] MiB in use" in free["measured"]
    assert "memory.used reads [N/A] on GPU0" in free["measured"]
    assert "free memory could not be checked" in free["measured"]
    assert "None" not in free["measured"]
    assert checks["memory_fit"]["status"] == "warn"
    assert "memory.total reads [N/A] on GPU0" in checks["memory_fit"]["measured"]
    assert checks["dtype"]["status"] == "warn"
    assert "compute_cap reads [N/A] on GPU0" in checks["dtype"]["measured"]
    assert summary["verdict"] == "warn"


def test_na_memory_on_an_unused_gpu_changes_nothing(known_models, driver_table):
    facts = na_facts()
    facts["gpus"] = facts["gpus"][::-1]  # GPU1 (known) first, and TP=1 uses only the lowest index
    facts["gpus"][0]["index"], facts["gpus"][1]["index"] = 0, 1
    summary = run(known_models, driver_table, s=settings(tensor_parallel_size=1), g=facts)
    assert statuses(summary)["gpu_memory_free"] == "pass"


def test_a_known_shortfall_still_fails_beside_an_unknown_gpu(known_models, driver_table):
    facts = na_facts()
    facts["gpus"][1]["memory_used_mib"] = 100_000
    summary = run(known_models, driver_table, g=facts)
    assert statuses(summary)["gpu_memory_free"] == "fail"


@pytest.mark.parametrize(
    ("variant", "kind", "loaded", "words"),
    [
        ("nodriver", "driver_not_loaded", False, "kernel driver is not loaded"),
        ("nodevices", "no_devices", True, "driver is loaded but sees no GPU"),
        ("mismatch", "version_mismatch", False, "different versions"),
    ],
)
def test_nvidia_smi_failures_are_named_for_what_they_are(known_models, driver_table, variant, kind, loaded, words):
    facts = gpu_facts_module.gather(FakeModule(TRANSCRIPTS / variant))
    assert facts["failure"]["kind"] == kind
    assert facts["driver_loaded"] is loaded
    summary = run(known_models, driver_table, g=facts)
    check = next(c for c in summary["checks"] if c["name"] == "nvidia_smi")
    assert check["status"] == "fail"
    assert words in check["measured"]
    assert check["details"]["failure_kind"] == kind
    if kind == "no_devices":
        assert "not loaded" not in check["measured"]


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (9, "", "driver_not_loaded"),
        (6, "", "no_devices"),
        (4, "", "permission"),
        (15, "", "gpu_lost"),
        (255, "Unable to determine the device handle for GPU0000:65:00.0: GPU is lost.  Reboot the system", "gpu_lost"),
        (255, "Failed to initialize NVML: Insufficient Permissions", "permission"),
        (255, "something new", "other"),
    ],
)
def test_failure_classification_by_message_then_exit_code(code, text, kind):
    assert classify_failure(code, text).kind == kind


# The live cut-over: vLLM starts beside Ollama's runners with the share of memory they leave free.


def test_live_cutover_starts_vllm_with_what_ollama_leaves_free(known_models, driver_table):
    # h100 transcript (recorded): 15309 of 81559 MiB in use, here held by an Ollama runner: 81 % free,
    # less the 3 % margin -> 0.78, below the configured 0.9.
    summary = run(
        known_models,
        driver_table,
        s=settings(tensor_parallel_size=1, ollama_archive_in_play=True, cutover="live"),
        g=ollama_facts(),
    )
    check = next(c for c in summary["checks"] if c["name"] == "cutover_memory")
    assert check["status"] == "pass", check
    assert check["details"]["gpu_memory_utilization"] == 0.78
    assert summary["cutover"] == {
        "mode": "live",
        "live": True,
        "gpu_memory_utilization": 0.78,
        "reason": "vLLM fits beside Ollama at 0.78 of GPU memory; restarted at 0.9 once Ollama is stopped",
    }


def test_live_cutover_fails_naming_the_variable_when_ollama_leaves_too_little(known_models, driver_table):
    facts = ollama_facts()
    facts["compute_apps"][0]["used_memory_mib"] = 78000
    facts["gpus"][0]["memory_used_mib"] = 78009
    summary = run(
        known_models,
        driver_table,
        s=settings(tensor_parallel_size=1, ollama_archive_in_play=True, cutover="live"),
        g=facts,
    )
    assert statuses(summary)["cutover_memory"] == "fail"
    assert "ollama_archive_cutover: outage" in summary["message"]
    assert summary["cutover"]["live"] is False


def test_outage_cutover_skips_the_check_and_keeps_the_configured_memory(known_models, driver_table):
    summary = run(
        known_models, driver_table, s=settings(tensor_parallel_size=1, ollama_archive_in_play=True), g=ollama_facts()
    )
    assert statuses(summary)["cutover_memory"] == "skip"
    assert summary["cutover"]["live"] is False
    assert summary["cutover"]["gpu_memory_utilization"] == 0.9


def test_cpu_lab_live_cutover_keeps_the_configured_settings(known_models, driver_table):
    summary = run(
        known_models, driver_table, s=settings(profile="cpu_lab", model="classroom-tiny", cutover="live"), g={}
    )
    assert statuses(summary)["cutover_memory"] == "skip"
    assert summary["cutover"]["live"] is True
    assert summary["cutover"]["gpu_memory_utilization"] == 0.9


def test_unknown_cutover_mode_is_refused(known_models, driver_table):
    with pytest.raises(ValueError, match="cutover must be outage or live"):
        run(known_models, driver_table, s=settings(cutover="sometimes"), g={})
