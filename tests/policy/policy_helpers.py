"""Helpers for the policy tests: tiny generators built from configs, toy problems with known answers."""

from __future__ import annotations

import torch

from rewardranker.records import Problem

# Tiny models gain nothing from a second thread, and on a shared 2-core box OpenMP spin-waiting under load made
# a step 10x slower with 2 threads than with 1 (measured): keep the policy tests single-threaded.
torch.set_num_threads(1)

CORPUS = [f"def f{i}(x):\n    return x + {i}\n\n# add {i} to a number\n" for i in range(60)]


def toy_problems(k: int = 8) -> list[Problem]:
    return [Problem(f"toy/{i}", "py", f"def f{i}(x):\n", tests=f"assert f{i}(1) == {i + 1}\n",
                    stop_tokens=("\ndef", "\n#"), canonical_solution=f"    return x + {i}\n") for i in range(k)]
