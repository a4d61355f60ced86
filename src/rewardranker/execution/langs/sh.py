"""Bash: MultiPL-E runs `bash FILE.sh` (15 s).

Status: Timeout -> OK if exit 0 -> SyntaxError if "syntax error" in stderr -> Exception.
Quirk kept as in MultiPL-E: bash skips a command it cannot parse inside a function body and carries on, so a
syntax error can end in exit 0 (OK) or, more often, in a later failing test (SyntaxError, because the message
is on stderr). The fast path is the same command inside the persistent sandbox (no per-program bwrap).
"""

from __future__ import annotations

from rewardranker.execution.langs.base import Language, exit_status
from rewardranker.execution.sandbox import StepResult

BASH = "/usr/bin/bash"


class Bash(Language):
    name, ext = "sh", "sh"
    tools = (BASH,)
    version_cmds = ((BASH, "--version"),)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [BASH, src]

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return exit_status(comp, run, "syntax error")


LANGUAGE = Bash()
