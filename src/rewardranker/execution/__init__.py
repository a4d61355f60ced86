"""Execute candidate programs against their tests, sandboxed, in parallel, with a verdict cache.

    from rewardranker.execution import ExecutionConfig, execute
    verdicts = execute(problems, samples, ExecutionConfig(workers=2))

Modules: `runner` (execute, ExecutionConfig), `sandbox` (bubblewrap + rlimits; its docstring says what it does
not protect against), `supervisor` (the in-sandbox process runner), `cache` (SQLite verdict cache),
`servers` (persistent compilers), `langs/<lang>.py` (commands and MultiPL-E status rules per language).
"""

from rewardranker.execution.cache import VerdictCache, default_cache_path
from rewardranker.execution.runner import ExecutionConfig, execute, program_text

__all__ = ["ExecutionConfig", "VerdictCache", "default_cache_path", "execute", "program_text"]
