"""The ablation's verdict on the issue's targets: a mean gain whose paired interval includes 0 is not a gain."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_selftrain", REPO / "benchmarks" / "selftrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _agg(reranked: list[float], gain_ci: list[float], exploitation: list[float], sampled_vs_sft: list[float]) -> dict:
    def row(k: int) -> dict:
        chain = {"exploitation": exploitation[k - 1], "robust_ranked_pass@1": 1.0, "robust_pairwise_acc": 2.0,
                 "sampled_vs_sft": sampled_vs_sft[k - 1]} if k else {}
        return {key: {"mean": v} for key, v in {"reranked_pass@1": reranked[k], **chain}.items()}

    gain = {"diff": reranked[2] - reranked[0], "ci95": gain_ci}
    none = [{"reranked_pass@1": {"mean": 20.0}} for _ in range(3)]
    return {"per_arm": {"self_training": [row(0), row(1), row(2)], "none": none},
            "within_arm": {"self_training: iteration 2 - iteration 0": {"reranked_pass@1": gain}},
            "between_arms": {"self_training - none, iteration 2": {"reranked_pass@1": {"diff": 5.0, "ci95": [1, 9]}}}}


def test_a_higher_mean_with_an_interval_through_zero_misses_the_product_target():
    notes = _bench().targets(_agg([28.06, 26.02, 28.15], [-3.24, 3.43], [75.3, 73.6], [-1.7, -0.8]), 2)
    assert notes[0].startswith("MISSED") and "interval NOT above 0" in notes[0]
    assert notes[1].startswith("met") and notes[2].startswith("met") and notes[3].startswith("met")
    assert "link 3" in notes[-1] and "link 4" in notes[-1] and "link 1" not in notes[-1]


def test_a_measurable_gain_with_every_link_holding_is_reported_as_a_holding_chain():
    notes = _bench().targets(_agg([28.0, 30.0, 33.0], [1.5, 8.0], [75.0, 70.0], [1.0, 2.0]), 2)
    assert notes[0].startswith("met") and "interval above 0" in notes[0]
    assert notes[-1] == "Chain holds."
