import pytest
from classroom_validation.kvcompare import compare_kv
from classroom_validation.kvlog import KvLog

# What gpu_preflight predicts for the validation settings (2x H200, TP=2, 8192 tokens, 0.9 utilisation).
PREFLIGHT = {
    "verdict": "warn",
    "estimate": {
        "predicted_max_sequences": 221,
        "predicted_concurrent_sequences": 128,
        "kv_available_gib_per_gpu": 121.25,
        "expected_vllm_log": {"gpu_kv_cache_tokens": 1_816_240, "maximum_concurrency": 221.71},
    },
}
LOGGED = KvLog(1_806_402, 220.51, 8192, [120.79, 120.79], "GPU", "two-line")


def test_ratio_is_logged_over_predicted():
    c = compare_kv(PREFLIGHT, LOGGED)
    assert c.tokens_ratio == pytest.approx(1_806_402 / 1_816_240, abs=1e-4)
    assert c.concurrency_ratio == pytest.approx(220.51 / 221.71, abs=1e-4)
    assert c.within_tolerance is True
    assert c.predicted_max_sequences == 221
    assert c.logged_kv_gib_per_gpu == [120.79, 120.79]
    assert "1,806,402" in c.detail
    assert "1,816,240" in c.detail


def test_a_prediction_off_by_more_than_ten_percent_is_flagged():
    far = KvLog(1_500_000, 183.1, 8192, [], "GPU", "one-line")
    c = compare_kv(PREFLIGHT, far)
    assert c.within_tolerance is False
    assert "beyond" in c.detail


def test_missing_log_line_or_missing_prediction_cannot_compare():
    assert compare_kv(PREFLIGHT, KvLog()).within_tolerance is None
    c = compare_kv({"verdict": "fail"}, LOGGED)
    assert c.tokens_ratio is None
    assert "no prediction" in c.detail
