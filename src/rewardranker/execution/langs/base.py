"""What every language backend provides: file name, commands, limits, status rule, optional fast paths.

A backend runs a program in two modes: `fast=True` (the executor's default: amortised toolchains such as a
precompiled header or a persistent compiler) and `fast=False` (MultiPL-E's plain per-program commands, the
benchmark's baseline). Both must give the same verdict.

Verdict rules (`VERDICT_RULES`): `multipl-e` runs `prompt + completion + "\n" + tests` as is and passes exit 0
(MultiPL-E's per-language status rule). `strict` runs the same program with harness code woven into the
*tests* (which the problem owns, not the program): a harness assertion mechanism installed after the
program's code and right before the tests, a count of the assertions that ran, and an epilogue after the tests
that writes `RR:<nonce>:OK` to fd 3, a pipe only the sandbox supervisor reads (`strict_program`). `passed`
needs MultiPL-E's rule *and* that message; a run MultiPL-E would pass without it (early exit 0, an exit
handler, a shutdown hook, a detected override) is `Tampered`.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rewardranker.errors import ToolchainError
from rewardranker.execution.sandbox import PATH_ENV, Limits, StepResult

if TYPE_CHECKING:
    from rewardranker.execution.runner import Slot

StepRunner = Callable[..., StepResult]  # (argv, cwd, timeout_s, limits, env=, python=, channel=) -> StepResult
VERDICT_RULES = ("strict", "multipl-e")
HARNESS_VERSION = "strict-1"  # part of the verdict cache key: bump whenever any strict_program changes


@dataclass
class Job:
    """One program on disk: `workdir` (host path, the program's cwd) holding `src`."""

    workdir: Path
    src: Path
    timeout_s: float  # the run step's timeout (compile steps use the language's own)
    nonce: str | None = None  # set when the program was instrumented for the strict verdict rule


class Language:
    """Base backend; subclasses set the class attributes and override what differs."""

    name = ""
    ext = ""
    source_name = "program"  # file stem; Java needs `Problem`
    run_timeout_s = 15.0  # MultiPL-E's per-subprocess default
    compile_timeout_s = 15.0
    run_limits = Limits()
    compile_limits = Limits()
    tools: tuple[str, ...] = ()  # absolute paths that must exist
    version_cmds: tuple[tuple[str, ...], ...] = ()
    run_env: dict[str, str] | None = None

    # -- set-up ----------------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ToolchainError if a tool is missing."""
        for tool in self.tools:
            if not Path(tool).exists():
                raise ToolchainError(self.name, tool, "not found; run `bash scripts/setup.sh`")

    @functools.cached_property
    def version(self) -> str:
        """Toolchain identity for the cache key (first line of each version command)."""
        parts = []
        for cmd in self.version_cmds:
            p = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
            text = (p.stdout or p.stderr).strip().splitlines()
            parts.append(text[0] if text else f"{cmd[0]}: exit {p.returncode}")
        return f"{self.name}|" + "|".join(parts)

    def prepare(self, toolbox: Path) -> dict[Path, str]:
        """Build whatever the fast path needs (once, host side); return read-only binds for the sandbox."""
        return {}

    def source_file(self, workdir: Path) -> Path:
        return Path(workdir) / f"{self.source_name}.{self.ext}"

    # -- commands --------------------------------------------------------------------------------------
    def compile_argv(self, slot: Slot, src: str, fast: bool) -> list[str] | None:
        """The compile command (paths as seen inside the sandbox), or None for interpreted languages."""
        return None

    def run_argv(self, src: str, fast: bool) -> list[str]:
        raise NotImplementedError

    def job_run_argv(self, slot: Slot, job: Job, fast: bool) -> list[str]:
        """The run command for one job (Java's strict harness has its own main class)."""
        return self.run_argv(slot.inside(job.src), fast)

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        """`head` (prompt + completion) and `tests` with the strict rule's harness woven in, or None when the
        tests do not have the shape this backend knows (the program then runs under MultiPL-E's rule)."""
        return None

    def in_process(self, fast: bool) -> bool:
        """Whether the sandbox supervisor may run the program in a forked copy of itself (Python only)."""
        return False

    def compile(self, slot: Slot, job: Job, fast: bool, step: StepRunner) -> StepResult | None:
        """Compile step; subclasses with a persistent compiler override this for fast=True."""
        argv = self.compile_argv(slot, slot.inside(job.src), fast)
        if argv is None:
            return None
        return step(argv, job.workdir, self.compile_timeout_s, self.compile_limits, env=self.compile_env())

    def compile_env(self) -> dict[str, str]:
        return {"PATH": PATH_ENV}

    def execute(self, slot: Slot, job: Job, fast: bool, step: StepRunner) -> tuple[StepResult | None, StepResult | None]:
        """Compile (if needed) then run; the run is skipped when compilation fails."""
        comp = self.compile(slot, job, fast, step)
        if comp is not None and (comp.timed_out or comp.exit_code != 0):
            return comp, None
        run = step(self.job_run_argv(slot, job, fast), job.workdir, job.timeout_s, self.run_limits,
                   env=self.run_env, python=self.in_process(fast), channel=job.nonce is not None)
        return comp, run

    # -- verdict ---------------------------------------------------------------------------------------
    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        """(status, exit code) following MultiPL-E's rule for this language."""
        raise NotImplementedError

    def verdict(self, comp: StepResult | None, run: StepResult | None, nonce: str | None) -> dict:
        """status, exit_code and passed of one run; `nonce` is None under MultiPL-E's rule. Under strict,
        `Tampered` means MultiPL-E's rule passes the run without the OK message, or the harness reported an
        override (which it reports because MultiPL-E's rule would pass the program): the verdict's
        `passed_multipl_e` is therefore `passed or status == "Tampered"`."""
        status, code = self.classify(comp, run)
        multipl_e = status == "OK" and code == 0
        if nonce is None:
            return {"status": status, "exit_code": code, "passed": multipl_e}
        channel = run.channel if run is not None else ""
        if f"RR:{nonce}:TAMPERED" in channel:
            status, passed = "Tampered", False
        elif multipl_e:
            passed = f"RR:{nonce}:OK" in channel
            status = "OK" if passed else "Tampered"
        else:
            passed = False
        return {"status": status, "exit_code": code, "passed": passed}


def compiled_or(comp: StepResult | None, run: StepResult | None) -> tuple[str, int] | None:
    """MultiPL-E's rule for compiled languages: a failed (or timed-out) compile is a SyntaxError."""
    if run is None:
        assert comp is not None
        return "SyntaxError", comp.exit_code
    return None


def exit_status(comp: StepResult | None, run: StepResult | None, syntax_marker: str | None = None) -> tuple[str, int | None]:
    """The common MultiPL-E rule: SyntaxError if compiling failed; Timeout; OK if exit 0; SyntaxError if
    `syntax_marker` is in stderr (interpreters); else Exception."""
    early = compiled_or(comp, run)
    if early:
        return early
    assert run is not None
    if run.timed_out:
        return "Timeout", run.exit_code
    if run.exit_code == 0:
        return "OK", 0
    if syntax_marker is not None and syntax_marker in run.stderr:
        return "SyntaxError", run.exit_code
    return "Exception", run.exit_code


def ok_message(nonce: str) -> str:
    """What the strict epilogue writes to fd 3 when every counted assertion ran and held."""
    return f"RR:{nonce}:OK\n"


def tamper_message(nonce: str, what: str) -> str:
    return f"RR:{nonce}:TAMPERED:{what}\n"


def count_lines(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text, flags=re.MULTILINE))


def which(name: str) -> str:
    """Absolute path of a tool, resolving symlinks only for the lookup (the sandbox sees the same tree)."""
    return shutil.which(name, path=PATH_ENV) or f"/usr/bin/{name}"
