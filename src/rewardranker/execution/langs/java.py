"""Java: MultiPL-E compiles `javac -encoding UTF8 -d DIR FILE.java` (CLASSPATH=javatuples jar, 15 s) and runs
`java -ea -cp DIR:javatuples.jar Problem` (15 s).

Status: compile exit != 0 -> SyntaxError; run Timeout -> OK if exit 0 -> Exception.
The javatuples 1.2 jar comes from Debian's libjavatuples-java (/usr/share/java/javatuples.jar) instead of
MultiPL-E's /usr/multiple/javatuples-1.2.jar; OpenJDK 17 instead of MultiPL-E's 11.
Fast path: one long-lived compiler JVM per worker (`JavaCompileServer.java`, itself sandboxed) that calls
javax.tools.JavaCompiler with exactly javac's arguments for each program: the same compiler, minus the JVM
start-up and with a warm JIT. Annotation processing is off there (`-proc:none`) as MultiPL-E programs have none.
The JVM reserves far more address space than it uses, so RLIMIT_AS is 8 GiB for java/javac.
"""

from __future__ import annotations

from pathlib import Path

from rewardranker.execution.langs.base import Job, Language, StepRunner, exit_status
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

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [JAVA, "-ea", "-cp", f"{Path(src).parent}:{JAVATUPLES}", "Problem"]

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return exit_status(comp, run)


LANGUAGE = Java()
