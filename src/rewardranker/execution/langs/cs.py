"""C#: MultiPL-E compiles `csc /d:DEBUG -r:System.Numerics.dll FILE.cs /out:FILE.exe` (no timeout) and runs
`mono FILE.exe` with only PATH and MONO_TRACE_LISTENER=Console.Error in the environment (5 s).

Status: compile exit != 0 -> SyntaxError; run Timeout -> Exception if stderr contains
"System.Diagnostics.DefaultTraceListener.Fail" or "Unhandled Exception" -> else OK. The exit code is not part of
the status (a failed Debug.Assert exits 0 under mono), and is reported as is; `passed` needs OK and exit 0.
Deviation forced by this machine: there is no Roslyn `csc` on Debian 12 (nor any package providing it), so
Mono's `mcs` compiles instead, with the same flags. mcs accepts C# up to 7.2: completions using newer syntax
(local functions, switch expressions, `is not`, target-typed `new()`, `^1`) get SyntaxError here where
MultiPL-E's csc might have passed them. The compile step gets a 60 s timeout (MultiPL-E has none).
Fast path: one long-lived mono process per worker (`CsCompileServer.cs`, itself sandboxed) that calls mcs's
in-process entry point (Mono.CSharp.CompilerCallableEntryPoint.InvokeCompiler, the API mcs offers for reuse)
with the same arguments, minus mono's start-up and JIT warm-up.
"""

from __future__ import annotations

from rewardranker.execution.langs.base import Job, Language, StepRunner, compiled_or
from rewardranker.execution.sandbox import PATH_ENV, StepResult

MCS, MONO = "/usr/bin/mcs", "/usr/bin/mono"
FAIL_MARKERS = ("System.Diagnostics.DefaultTraceListener.Fail", "Unhandled Exception")


class CSharp(Language):
    name, ext = "cs", "cs"
    run_timeout_s = 5.0
    compile_timeout_s = 60.0
    tools = (MCS, MONO)
    version_cmds = ((MCS, "--version"), (MONO, "--version"))
    run_env = {"PATH": PATH_ENV, "MONO_TRACE_LISTENER": "Console.Error"}

    def compile_argv(self, slot, src: str, fast: bool) -> list[str]:
        return [MCS, "-d:DEBUG", "-r:System.Numerics.dll", src, f"-out:{src.rsplit('.', 1)[0]}.exe"]

    def compile(self, slot, job: Job, fast: bool, step: StepRunner) -> StepResult | None:
        server = slot.server("cs") if fast else None
        if server is None:
            return super().compile(slot, job, fast, step)
        argv = self.compile_argv(slot, slot.inside(job.src), fast)
        return server.compile(argv[1:], job.workdir, self.compile_timeout_s)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [MONO, src.rsplit(".", 1)[0] + ".exe"]

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        early = compiled_or(comp, run)
        if early:
            return early
        assert run is not None
        if run.timed_out:
            return "Timeout", run.exit_code
        if any(m in run.stderr for m in FAIL_MARKERS):
            return "Exception", run.exit_code
        return "OK", run.exit_code


LANGUAGE = CSharp()
