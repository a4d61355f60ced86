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
Strict rule: each `Debug.Assert(...)` statement of the tests becomes a call to a harness class
(`global::RrH<nonce>.Check`, same file) that counts it and throws on failure, so `Trace.Listeners.Clear()`,
a custom listener or a flood of stderr that pushes mono's failure marker past the 2 KiB read no longer hide a
failed assertion; the tests' `Main` is renamed and the harness's `Main` calls it, then writes the OK message
to fd 3. `Environment.Exit(0)` never reaches it.
"""

from __future__ import annotations

import re

from rewardranker.execution.langs.base import Job, Language, StepRunner, compiled_or, ok_message
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

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        if len(_MAIN.findall(tests)) != 1:
            return None
        body, n = _ASSERT.subn(rf"\1global::RrH{nonce}.Check(\2);",
                               _MAIN.sub(f"public static void RrTests{nonce}(string[] args)", tests))
        ok = ok_message(nonce).replace("\n", "\\n")
        harness = (f"\nstatic class RrH{nonce} {{\n  static int n = 0;\n  static bool failed = false;\n"
                   f"  public static void Check(bool ok) {{ if (!ok) {{ failed = true; throw new global::System.Exception("
                   f"\"rewardranker: test assertion failed\"); }} n++; }}\n"
                   f"  public static void Main(string[] args) {{\n    global::Problem.RrTests{nonce}(args);\n"
                   f"    if (!failed && n == {n}) {{\n"
                   f"      using (var f = new global::System.IO.FileStream(\"/dev/fd/3\", global::System.IO.FileMode.Open, "
                   f"global::System.IO.FileAccess.Write)) {{\n"
                   f"        var b = global::System.Text.Encoding.ASCII.GetBytes(\"{ok}\"); f.Write(b, 0, b.Length); }} }}\n"
                   f"  }}\n}}\n")
        return head + "\n" + body + harness

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


_MAIN = re.compile(r"public\s+static\s+void\s+Main\s*\(\s*string\s*\[\]\s*args\s*\)")
_ASSERT = re.compile(r"^(\s*)Debug\.Assert\s*(\(.*\));[ \t]*$", re.MULTILINE)

LANGUAGE = CSharp()
