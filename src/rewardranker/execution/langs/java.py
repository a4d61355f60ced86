"""Java: MultiPL-E compiles `javac -encoding UTF8 -d DIR FILE.java` (CLASSPATH=javatuples jar, 15 s) and runs
`java -ea -cp DIR:javatuples.jar Problem` (15 s).

Status: compile exit != 0 -> SyntaxError; run Timeout -> OK if exit 0 -> Exception.
The javatuples 1.2 jar comes from Debian's libjavatuples-java (/usr/share/java/javatuples.jar) instead of
MultiPL-E's /usr/multiple/javatuples-1.2.jar; OpenJDK 17 instead of MultiPL-E's 11.
Fast path: one long-lived compiler JVM per worker (`JavaCompileServer.java`, itself sandboxed) that calls
javax.tools.JavaCompiler with exactly javac's arguments for each program: the same compiler, minus the JVM
start-up and with a warm JIT. Annotation processing is off there (`-proc:none`) as MultiPL-E programs have none.
The JVM reserves far more address space than it uses, so RLIMIT_AS is 8 GiB for java/javac.
Strict rule: each `assert(...)` statement of the tests becomes a call to a harness class (`RrH<nonce>`, in the
same file) that counts it and throws on failure (so `-ea`, `$assertionsDisabled` and ClassLoader assertion
settings no longer matter); the tests' `main` is renamed and the harness class is the main class: it calls
the tests and then writes the OK message to fd 3. `System.exit(0)` and a shutdown hook that halts with 0 never
reach it.
"""

from __future__ import annotations

import re
from pathlib import Path

from rewardranker.execution.langs.base import Job, Language, StepRunner, exit_status, ok_message
from rewardranker.execution.sandbox import PATH_ENV, Limits, StepResult

JAVAC, JAVA = "/usr/bin/javac", "/usr/bin/java"
JAVATUPLES = "/usr/share/java/javatuples.jar"
SERVER_SRC = Path(__file__).with_name("JavaCompileServer.java")


class Java(Language):
    name, ext = "java", "java"
    source_name = "Problem"
    tools = (JAVAC, JAVA, JAVATUPLES)
    version_cmds = ((JAVAC, "-version"), (JAVA, "-version"))
    run_limits = compile_limits = Limits(as_bytes=8 << 30, nproc=256)

    def compile_argv(self, slot, src: str, fast: bool) -> list[str]:
        return [JAVAC, "-encoding", "UTF8", "-d", str(Path(src).parent), src]

    def compile_env(self) -> dict[str, str]:
        return {"PATH": PATH_ENV, "CLASSPATH": JAVATUPLES}

    def compile(self, slot, job: Job, fast: bool, step: StepRunner) -> StepResult | None:
        server = slot.server("java") if fast else None
        if server is None:
            return super().compile(slot, job, fast, step)
        src = slot.inside(job.src)
        return server.compile(["-encoding", "UTF8", "-proc:none", "-classpath", JAVATUPLES, "-d",
                               str(Path(src).parent), src], job.workdir, self.compile_timeout_s)

    def run_argv(self, src: str, fast: bool, main_class: str = "Problem") -> list[str]:
        return [JAVA, "-ea", "-cp", f"{Path(src).parent}:{JAVATUPLES}", main_class]

    def job_run_argv(self, slot, job: Job, fast: bool) -> list[str]:
        return self.run_argv(slot.inside(job.src), fast, f"RrH{job.nonce}" if job.nonce else "Problem")

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        if len(_MAIN.findall(tests)) != 1:
            return None
        body, n = _ASSERT.subn(rf"\1RrH{nonce}.check(\2);",
                               _MAIN.sub(f"public static void rrTests{nonce}(String[] args)", tests))
        ok = ok_message(nonce).replace("\n", "\\n")
        harness = (f"\nclass RrH{nonce} {{\n  static int n = 0;\n  static boolean failed = false;\n"
                   f"  static void check(boolean ok) {{ if (!ok) {{ failed = true; throw new java.lang.AssertionError(); }} n++; }}\n"
                   f"  public static void main(String[] args) throws java.lang.Exception {{\n"
                   f"    Problem.rrTests{nonce}(args);\n"
                   f"    if (!failed && n == {n}) {{\n"
                   f"      try (java.io.FileOutputStream out = new java.io.FileOutputStream(\"/dev/fd/3\")) {{\n"
                   f"        out.write(\"{ok}\".getBytes()); }} }}\n  }}\n}}\n")
        return head + "\n" + body + harness

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return exit_status(comp, run)


_MAIN = re.compile(r"public\s+static\s+void\s+main\s*\(\s*String\s*\[\]\s*args\s*\)")
_ASSERT = re.compile(r"^(\s*)assert\s*(\(.*\));[ \t]*$", re.MULTILINE)

LANGUAGE = Java()
