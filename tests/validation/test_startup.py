from pathlib import Path

from classroom_validation.startup import Startup, parse_startup

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "docs" / "hardware-validation" / "results" / "vllm-tp2.log"

# vLLM 0.32's lines of a stamped start (the supervisor's `[+ s]` prefix), compile cache kept.
STAMPED = """\
[+    0.05s] /venv/lib/python3.12/site-packages/torch/cuda/__init__.py:61: FutureWarning: ...
[+   14.80s] (APIServer pid=10) INFO 11-30 10:00:14 [utils.py:233] non-default args: {'model': '/m'}
[+   19.20s] (EngineCore pid=20) INFO 11-30 10:00:19 [core.py:93] Initializing a V1 LLM engine \
(v0.32.0) with config: ...
[+   31.00s] (Worker_TP0 pid=30) INFO 11-30 10:00:31 [gpu_model_runner.py:2600] Starting to load model /m...
[+   33.50s] (Worker_TP0 pid=30) INFO 11-30 10:00:33 [gpu_model_runner.py:2650] Model loading took 4.24 GiB \
memory and 2.200000 seconds
[+   41.00s] (Worker_TP0 pid=30) INFO 11-30 10:00:41 [backends.py:548] Dynamo bytecode transform time: 7.40 s
[+   44.10s] (Worker_TP0 pid=30) INFO 11-30 10:00:44 [backends.py:197] Directly load the compiled graph(s) for \
dynamic shape from the cache, took 2.90 s
[+   45.00s] (Worker_TP0 pid=30) INFO 11-30 10:00:45 [monitor.py:34] torch.compile takes 10.30 s in total
[+   47.00s] (EngineCore pid=20) INFO 11-30 10:00:47 [kv_cache_utils.py:2327] GPU KV cache size: 1,806,402 tokens, \
Maximum concurrency for 8,192 tokens per request: 220.51x
[+   47.50s] Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|##########| 67/67 [00:20<00:00,  3.30it/s]
[+   68.00s] (Worker_TP0 pid=30) INFO 11-30 10:01:08 [gpu_model_runner.py:3400] Graph capturing finished in 20 secs, \
took 0.88 GiB
[+   70.00s] (EngineCore pid=20) INFO 11-30 10:01:10 [core.py:210] init engine (profile, create kv cache, warmup \
model) took 36.00 seconds
[+   74.00s] (APIServer pid=10) INFO:     Application startup complete.
"""


def test_a_stamped_start_is_split_from_launch_to_health():
    s = parse_startup(STAMPED, healthy_after_s=75.5)
    assert s.clock == "launch"
    phases = {p.key: (p.start_s, p.end_s, p.seconds) for p in s.phases}
    assert phases["first_log"] == (0.0, 0.05, 0.05)
    assert phases["engine_core"] == (0.05, 19.2, 19.15)
    assert phases["load_start"][2] == 11.8
    assert phases["load_done"][2] == 2.5
    assert phases["compile_done"] == (33.5, 45.0, 11.5)
    assert phases["kv_done"][2] == 2.0
    assert phases["graphs_done"] == (47.0, 68.0, 21.0)
    assert phases["engine_ready"][2] == 2.0
    assert phases["api_up"][2] == 4.0
    assert phases["healthy"] == (74.0, 75.5, 1.5)
    assert sum(p.seconds for p in s.phases) == 75.5  # the phases tile the start with no gap
    assert s.compile_cache == "hit"
    assert s.reported == {"model_load_s": 2.2, "dynamo_transform_s": 7.4, "graph_cache_load_s": 2.9,
                          "torch_compile_total_s": 10.3, "cuda_graphs_s": 20.0, "init_engine_s": 36.0}


def test_the_recorded_h200_start_is_split_by_vllms_own_timestamps():
    s = parse_startup(RECORDED.read_text(errors="replace"), healthy_after_s=108.0)
    assert s.clock == "first log line"
    ends = {p.key: p.end_s for p in s.phases}
    # 07:14:40 first line; 07:14:56 engine core; 07:15:46 compile done; 07:15:54 graphs; 07:16:12 API up
    assert ends == {"engine_core": 16.0, "load_start": 33.0, "load_done": 34.0, "compile_done": 66.0, "kv_done": 69.0,
                    "graphs_done": 74.0, "engine_ready": 88.0, "api_up": 92.0}
    assert s.compile_cache == "miss"
    assert s.reported["torch_compile_total_s"] == 31.01
    assert s.reported["init_engine_s"] == 53.14


def test_an_eager_start_has_no_compile_phase_and_round_trips():
    eager = "\n".join(line for line in STAMPED.splitlines()
                      if "compile" not in line and "Dynamo" not in line and "CUDA graphs" not in line
                      and "Graph capturing" not in line)
    s = parse_startup(eager, healthy_after_s=75.0)
    keys = [p.key for p in s.phases]
    assert "compile_done" not in keys and "graphs_done" not in keys
    assert keys[-1] == "healthy"
    assert s.compile_cache == "n/a"
    assert Startup.from_dict(s.to_dict()) == s


def test_an_empty_log_has_no_phases():
    s = parse_startup("", healthy_after_s=None)
    assert (s.clock, s.phases, s.compile_cache) == ("none", [], "n/a")


def test_the_cpu_builds_model_line_ends_the_load_phase():
    cpu = ("[+ 51.24s] (Worker_TP0 pid=1) INFO 11-30 10:30:42 [cpu_model_runner.py:68] Starting to load model /m...\n"
           "[+ 51.37s] (Worker_TP0 pid=1) INFO 11-30 10:30:42 [base_loader.py:82] Initializing model took 0.127589 "
           "seconds\n")
    s = parse_startup(cpu)
    assert [(p.key, p.seconds) for p in s.phases][-1] == ("load_done", 0.13)
    assert s.reported == {"model_load_s": 0.127589}
