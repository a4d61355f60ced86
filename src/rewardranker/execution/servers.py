"""Persistent compilers (javac, tsc, mcs): one long-lived process per worker and language, each sandboxed.

Why: javac, tsc and mcs spend most of a per-program invocation starting their runtime (JVM, node, mono),
loading the compiler and, for tsc, parsing the lib .d.ts files; a warm process compiles a MultiPL-E program in
a fraction of that. Each server runs the real compiler with the same arguments as the per-program command
(langs/JavaCompileServer.java, langs/ts_compile_server.js, langs/CsCompileServer.cs), one program per
request, so verdicts are the same. A server runs in the worker's sandbox configuration (same uid, namespaces,
read-only root, scratch dir, seccomp filter, no host environment) but in its own bwrap, so the per-program
clean-up never touches it, with its working directory in a read-only folder (/tmp/rr/lib): nothing a
program leaves behind (node_modules/@types, package.json, headers, class files, assemblies) is in any folder a
compiler searches. A server that exceeds the compile timeout is killed and restarted for the next request (the
program gets the compile timeout's status); one that dies is an infrastructure failure (InfraError).
Protocol: one request line (arguments joined by TAB), one answer line "<exit>\\t<escaped diagnostics>".
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from rewardranker.errors import ToolchainError
from rewardranker.execution.sandbox import (
    CAP_BYTES,
    InfraError,
    Sandbox,
    StepResult,
    _kill,
    _readline,
    publish,
)

SERVER_CWD = "/tmp/rr/lib"  # read-only inside the sandbox: compilers find nothing there that a program made

LANGS_DIR = Path(__file__).with_name("langs")
SERVER_AS = 8 << 30


class CompileServer:
    """A persistent compiler process in a sandbox; `compile(args)` answers like the command-line compiler."""

    def __init__(self, box: Sandbox, argv: list[str], name: str):
        self.box, self.argv, self.name = box, argv, name
        self.proc: subprocess.Popen | None = None
        self.log = box.scratch.parent / f"{name}-server.log"

    def start(self) -> None:
        prl = ["/usr/bin/prlimit", f"--as={SERVER_AS}", f"--fsize={64 << 20}", "--nofile=1024", "--core=0", "--"]
        with open(self.log, "ab") as log:
            self.proc = self.box.popen(self.argv, chdir=SERVER_CWD, prefix=prl, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=log)

    def compile(self, args: list[str], workdir: Path, timeout_s: float) -> StepResult:
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self.start()
            timeout_s += 30.0  # the first request also pays for the runtime's start-up
        start = time.monotonic()
        try:
            self.proc.stdin.write(("\t".join(args) + "\n").encode())
            self.proc.stdin.flush()
            line = _readline(self.proc.stdout, timeout_s)
        except OSError:
            line = b""
        duration = time.monotonic() - start
        if not line:
            timed_out = duration >= timeout_s - 0.01
            tail = self.log.read_text(errors="replace")[-CAP_BYTES:] if self.log.exists() else ""
            self.close()
            if not timed_out:
                raise InfraError(f"the {self.name} compile server died: {tail[-300:]}")
            return StepResult(-1, True, duration, stderr=f"{self.name} compile server timed out: {tail}")
        code, _, text = line.decode("utf-8", "replace").rstrip("\n").partition("\t")
        text = text.replace("\\\\", "\0").replace("\\n", "\n").replace("\0", "\\")
        return StepResult(int(code), False, duration, stdout="", stderr=text[:CAP_BYTES])

    def close(self) -> None:
        if self.proc is not None:
            _kill(self.proc, grace_s=2.0)
            self.proc = None


def start(language: str, slot) -> CompileServer | None:
    """The compile server for `language` in `slot` (not started until its first request)."""
    box = Sandbox(slot.uid, slot.sandbox.scratch, slot.cfg.sandbox, slot.binds, slot.lib, slot.cfg.seccomp)
    toolbox = slot.cfg.toolbox
    if language == "java":
        classes = build_java_server(toolbox)
        return CompileServer(box, ["/usr/bin/java", "-XX:+UseSerialGC", "-cp", box.inside(classes),
                                   "JavaCompileServer"], "java")
    if language == "ts":
        from rewardranker.execution.langs.ts import LANGUAGE as TS

        js = publish(toolbox, LANGS_DIR / "ts_compile_server.js", "ts-server")
        return CompileServer(box, ["/usr/bin/node", box.inside(js / "ts_compile_server.js"),
                                   box.inside(TS.published)], "ts")
    if language == "cs":
        exe = build_cs_server(toolbox)
        return CompileServer(box, ["/usr/bin/mono", box.inside(exe / "CsCompileServer.exe")], "cs")
    return None


def _build_once(out: Path, build) -> Path:
    """Run `build(tmp_dir)` once under a file lock; publish the result at `out` world-readable."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))  # unique: leftovers of a
            try:  # killed build never get in the way
                tmp = stage / "x"
                tmp.mkdir()
                build(tmp)
                for p in [tmp, *tmp.rglob("*")]:
                    if not p.is_symlink():
                        os.chmod(p, 0o755 if p.is_dir() else 0o644)
                os.rename(tmp, out)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    return out


def build_java_server(toolbox: Path) -> Path:
    src = publish(toolbox, LANGS_DIR / "JavaCompileServer.java", "java-server-src") / "JavaCompileServer.java"

    def build(tmp: Path) -> None:
        p = subprocess.run(["/usr/bin/javac", "-d", str(tmp), str(src)], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise ToolchainError("java", "javac JavaCompileServer.java", p.stderr[-500:])

    return _build_once(src.parent.with_name(src.parent.name.replace("-src", "-classes")), build)


def build_cs_server(toolbox: Path) -> Path:
    src = publish(toolbox, LANGS_DIR / "CsCompileServer.cs", "cs-server-src") / "CsCompileServer.cs"

    def build(tmp: Path) -> None:
        p = subprocess.run(["/usr/bin/mcs", "-r:/usr/lib/mono/4.5/mcs.exe", str(src),
                            f"-out:{tmp / 'CsCompileServer.exe'}"], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise ToolchainError("cs", "mcs CsCompileServer.cs", (p.stdout + p.stderr)[-500:])
        os.symlink("/usr/lib/mono/4.5/mcs.exe", tmp / "mcs.exe")  # resolved beside the server at load time

    return _build_once(src.parent.with_name(src.parent.name.replace("-src", "-exe")), build)
