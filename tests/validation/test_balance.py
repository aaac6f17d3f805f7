from classroom_validation.balance import gpu_only, judge


def test_only_the_gpu_checks_are_enabled_with_the_classroom_limits():
    t = gpu_only()
    assert t.gpu_util_balance_max_ratio == 2.0
    assert t.gpu_util_mean_min_pct == 10.0
    assert t.ttft_p95_ms_max is None
    assert t.min_requests is None


def test_gpu0_busy_gpu1_idle_fails_with_a_readable_reason():
    status, checks = judge({0: 97.0, 1: 0.0})
    assert status == "fail"
    balance = next(c for c in checks if c["name"] == "gpu_util_balance_max_ratio")
    assert balance["passed"] is False
    assert "a GPU stayed idle" in balance["detail"]
    assert "GPU 1: 0.0 %" in balance["detail"]


def test_both_gpus_busy_passes():
    status, checks = judge({0: 97.0, 1: 95.5})
    assert status == "pass"
    assert all(c["passed"] for c in checks)


def test_no_samples_fail_rather_than_pass():
    status, checks = judge({}, "NVML unavailable")
    assert status == "fail"
    assert "NVML unavailable" in checks[0]["detail"]

