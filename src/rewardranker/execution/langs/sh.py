"""Bash: MultiPL-E runs `bash FILE.sh` (15 s).

Status: Timeout -> OK if exit 0 -> SyntaxError if "syntax error" in stderr -> Exception.
Quirk kept as in MultiPL-E: bash skips a command it cannot parse inside a function body and carries on, so a
syntax error can end in exit 0 (OK) or, more often, in a later failing test (SyntaxError, because the message
is on stderr). The fast path is the same command inside the persistent sandbox (no per-program bwrap).
Strict rule: each `[[ ... ]]` line of the tests gets `&& count || { mark failed; exit 1; }` (so neither a
`set` the program redefined nor a test file without a working `set -e` lets a failing check through), and an
epilogue after the tests writes the OK message to fd 3 only if every check ran and held. The candidate runs in
`$(...)` subshells, so what it changes at test time does not reach the test shell; what the program set up
before the tests is checked: aliases expanded (`expand_aliases`) or `extdebug` (a DEBUG trap that skips
commands) make the run `Tampered`. `exit 0` and `trap 'exit 0' EXIT` never reach the epilogue.
"""

from __future__ import annotations

import re

from rewardranker.execution.langs.base import Language, exit_status, ok_message
from rewardranker.execution.sandbox import StepResult

BASH = "/usr/bin/bash"


class Bash(Language):
    name, ext = "sh", "sh"
    tools = (BASH,)
    version_cmds = ((BASH, "--version"),)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [BASH, src]

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        body, n = _CHECK.subn(rf"\1 && __rr_n_{nonce}=$((__rr_n_{nonce}+1)) || {{ __rr_f_{nonce}=1; exit 1; }}",
                              tests)
        if not n:
            return None
        ok = ok_message(nonce).rstrip("\n")
        epilogue = (f"\nif [[ $BASHOPTS == *expand_aliases* || $BASHOPTS == *extdebug* ]]; then "
                    f"printf '%s\\n' 'RR:{nonce}:TAMPERED:aliases or extdebug were on during the tests' >&3; "
                    f"elif [[ -z ${{__rr_f_{nonce}}} && ${{__rr_n_{nonce}:-0}} -eq {n} ]]; then "
                    f"printf '%s\\n' '{ok}' >&3; fi\n")
        return head + "\n" + body + epilogue

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return exit_status(comp, run, "syntax error")


_CHECK = re.compile(r"^([ \t]*\[\[ .* \]\])[ \t]*$", re.MULTILINE)

LANGUAGE = Bash()
