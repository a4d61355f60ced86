"""CodeT-style dual execution agreement: run every candidate on the model-written asserts, group candidates by
the exact set of asserts they pass, and score a group by (its size x asserts passed).

Candidates run through the project's executor (sandbox, verdict cache): each candidate becomes one harness
program whose test part runs every assert under a per-assert time limit inside try/except and prints a bitmask
of the asserts that passed on its last stdout line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rewardranker.errors import RewardRankerError
from rewardranker.problems import index_problems
from rewardranker.records import Problem, Sample, Verdict

MARKER = "@@RR_AGREEMENT"
_LINE = re.compile(rf"^{MARKER} (\d+) ([0-9a-f]+)$", re.MULTILINE)

_HARNESS = '''
import signal as _rr_signal, sys as _rr_sys, os as _rr_os
_rr_tests = {tests!r}
def _rr_alarm(_signum, _frame):
    raise TimeoutError("assert time limit")
_rr_signal.signal(_rr_signal.SIGALRM, _rr_alarm)
_rr_sys.stdout = open(_rr_os.devnull, "w")
_rr_bits = 0
for _rr_i, _rr_t in enumerate(_rr_tests):
    try:
        _rr_signal.setitimer(_rr_signal.ITIMER_REAL, {limit!r})
        exec(_rr_t, globals())
        _rr_signal.setitimer(_rr_signal.ITIMER_REAL, 0)
        _rr_bits |= 1 << _rr_i
    except BaseException:
        _rr_signal.setitimer(_rr_signal.ITIMER_REAL, 0)
_rr_sys.__stdout__.write("\\n{marker} %d %x\\n" % (len(_rr_tests), _rr_bits))
_rr_sys.__stdout__.flush()
'''


@dataclass(frozen=True)
class AgreementConfig:
    """Which asserts to run and how long each may take (CodeT: first 100 distinct, 0.1 s)."""

    max_tests: int = 100
    per_test_timeout_s: float = 0.1


def harness(problem: Problem, tests: list[str], cfg: AgreementConfig) -> Problem:
    """A Python problem whose test part runs `tests` against the candidate and prints the pass bitmask."""
    if problem.language != "py":
        raise RewardRankerError(f"{problem.problem_id}: agreement runs Python asserts; language is "
                                f"{problem.language!r}")
    code = _HARNESS.format(tests=list(tests), limit=cfg.per_test_timeout_s, marker=MARKER)
    return Problem(problem_id=problem.problem_id, language="py", prompt=problem.prompt, tests=code,
                   stop_tokens=problem.stop_tokens, entry_point=problem.entry_point, source=problem.source)


def parse_bitmask(stdout: str, n_tests: int) -> frozenset[int]:
    """Indices of the asserts a candidate passed; empty when the harness never reported (crash, timeout)."""
    found = _LINE.findall(stdout or "")
    if not found:
        return frozenset()
    n, bits = int(found[-1][0]), int(found[-1][1], 16)
    if n != n_tests:
        return frozenset()
    return frozenset(i for i in range(n) if bits >> i & 1)


def group_scores(passed_sets: list[frozenset[int]]) -> list[float]:
    """CodeT's score of each candidate: size of its group (same passed set) x number of asserts passed."""
    sizes: dict[frozenset[int], int] = {}
    for s in passed_sets:
        sizes[s] = sizes.get(s, 0) + 1
    return [float(sizes[s] * len(s)) for s in passed_sets]


def _execute(problems: list[Problem], samples: list[Sample], exec_cfg, progress: bool) -> list[Verdict]:
    try:
        from rewardranker.execution import ExecutionConfig, execute
    except ImportError as e:  # the executor is a sibling stage; say so plainly if it is missing
        raise RewardRankerError(f"agreement needs the executor (rewardranker.execution): {e}") from None
    return execute(problems, samples, exec_cfg or ExecutionConfig(), progress=progress)


def passed_sets(problems: dict[str, Problem], samples: list[Sample], generated_tests: dict[str, list[str]],
                cfg: AgreementConfig = AgreementConfig(), exec_cfg=None,
                progress: bool = True) -> list[frozenset[int]]:
    """For each sample (in order), the set of generated asserts it passes (executed, cached by the executor)."""
    missing = sorted({s.problem_id for s in samples} - set(generated_tests))
    if missing:
        raise RewardRankerError(f"agreement needs generated_tests; none for {len(missing)} problems, e.g. "
                                f"{missing[0]!r} (use a reranking-layout file that has them)")
    tests = {pid: list(t[: cfg.max_tests]) for pid, t in generated_tests.items()}
    problems = index_problems(problems)
    harnesses = [harness(problems[key], tests[key[1]], cfg) for key in sorted({s.problem_key for s in samples})]
    verdicts = _execute(harnesses, samples, exec_cfg, progress)
    by_key = {(v.problem_id, v.sample_id): v for v in verdicts}
    return [parse_bitmask(by_key[(s.problem_id, s.sample_id)].stdout, len(tests[s.problem_id]))
            if (s.problem_id, s.sample_id) in by_key else frozenset() for s in samples]


def agreement_scores(samples: list[Sample], sets: list[frozenset[int]]) -> list[float]:
    """CodeT group scores computed within each problem (0 for candidates that pass no assert)."""
    return per_problem(samples, sets, group_scores)


def soft_agreement(passed_sets_: list[frozenset[int]], alpha: float = 0.5) -> list[float]:
    """Soft dual agreement within one problem: sum over candidates j of Jaccard(S_i, S_j), times |S_i|^alpha.

    CodeT's exact-set groups split when one noisy assert differs; summing set similarity instead lets nearly
    identical behaviour reinforce, and the sqrt of the asserts passed still rewards passing more tests.
    Candidates that pass no assert score 0.
    """
    import numpy as np

    n_tests = max((max(s) + 1 for s in passed_sets_ if s), default=0)
    if n_tests == 0:
        return [0.0] * len(passed_sets_)
    b = np.zeros((len(passed_sets_), n_tests))
    for i, s in enumerate(passed_sets_):
        b[i, list(s)] = 1.0
    size = b.sum(axis=1)
    inter = b @ b.T
    union = size[:, None] + size[None, :] - inter
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return (jac.sum(axis=1) * size ** alpha).tolist()


def per_problem(samples: list[Sample], sets: list[frozenset[int]], fn) -> list[float]:
    """Apply a per-problem scoring function `fn(sets) -> scores` and return scores in sample order."""
    out = [0.0] * len(samples)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.problem_key, []).append(i)
    for idx in groups.values():
        for i, g in zip(idx, fn([sets[i] for i in idx])):
            out[i] = g
    return out


def agreement_feature(score: float) -> float:
    """log(1 + group score): the agreement term of the combined score."""
    return math.log1p(score)
