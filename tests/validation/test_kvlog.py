from classroom_validation.kvlog import parse_kv_log

# The figures measured on 2x H200 with vLLM 0.26.0 (shared vLLM reference), with real log prefixes.
TWO_LINE = """\
(EngineCore_DP0 pid=2741) INFO 11-20 10:14:02 [gpu_worker.py:561] Available KV cache memory: 120.79 GiB
(EngineCore_DP0 pid=2741) INFO 11-20 10:14:03 [kv_cache_utils.py:2177] GPU KV cache size: 1,806,402 tokens
(EngineCore_DP0 pid=2741) INFO 11-20 10:14:03 [kv_cache_utils.py:2179] Maximum concurrency for 8,192 tokens \
per request: 220.51x
"""
# 0.30+ (format string of vllm/v1/core/kv_cache_utils.py in 0.32: "%s KV cache size: %s tokens, Maximum ...").
ONE_LINE = (
    "(EngineCore pid=99) INFO 12-01 09:00:00 [kv_cache_utils.py:2327] GPU KV cache size: 1,806,402 tokens, "
    "Maximum concurrency for 8,192 tokens per request: 220.51x\n"
)


def test_two_line_format_gives_tokens_concurrency_and_memory():
    log = parse_kv_log("INFO starting\n" + TWO_LINE + "INFO Application startup complete.\n")
    assert log.gpu_kv_cache_tokens == 1_806_402
    assert log.max_concurrency == 220.51
    assert log.tokens_per_request == 8192
    assert log.available_kv_gib == [120.79]
    assert log.layout == "two-line"
    assert log.pool == "GPU"
    assert log.found
    assert len(log.lines) == 3


def test_one_line_format_of_newer_versions():
    log = parse_kv_log(ONE_LINE)
    assert (log.gpu_kv_cache_tokens, log.max_concurrency, log.tokens_per_request) == (1_806_402, 220.51, 8192)
    assert log.layout == "one-line"
    assert log.pool == "GPU"


def test_the_pool_is_named_by_the_device():
    assert parse_kv_log(ONE_LINE.replace("GPU KV", "CPU KV")).pool == "CPU"
    assert parse_kv_log(ONE_LINE.replace("GPU KV", "GPU + host KV")).pool == "GPU + host"


def test_each_worker_reports_its_own_memory():
    workers = "".join(
        f"(Worker_TP{r} pid={r}) INFO [gpu_worker.py:561] Available KV cache memory: 120.79 GiB\n" for r in (0, 1)
    )
    assert parse_kv_log(workers + TWO_LINE).available_kv_gib == [120.79, 120.79, 120.79]


def test_the_last_start_in_a_log_wins():
    earlier = TWO_LINE.replace("1,806,402", "900,000").replace("220.51x", "109.86x")
    log = parse_kv_log(earlier + TWO_LINE)
    assert (log.gpu_kv_cache_tokens, log.max_concurrency) == (1_806_402, 220.51)


def test_absent_and_partial_logs():
    none = parse_kv_log("INFO nothing about the cache\nERROR Engine core initialization failed\n")
    assert (none.gpu_kv_cache_tokens, none.max_concurrency, none.layout, none.found) == (None, None, "absent", False)
    partial = parse_kv_log(TWO_LINE.splitlines()[1])
    assert partial.layout == "partial"
    assert partial.gpu_kv_cache_tokens == 1_806_402
    assert not partial.found


def test_small_numbers_without_thousands_separators():
    log = parse_kv_log("GPU KV cache size: 912 tokens\nMaximum concurrency for 2048 tokens per request: 0.45x\n")
    assert (log.gpu_kv_cache_tokens, log.tokens_per_request, log.max_concurrency) == (912, 2048, 0.45)
