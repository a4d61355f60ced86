"""Run untrusted programs in a bubblewrap sandbox, one long-lived sandbox per worker.

What a sandbox does (when the executor runs as root, the normal case on the project's machines):
- The worker's processes (its supervisor, programs and compile servers) run as the worker's own unprivileged
  uid (from a block of 64 that depends on the executor's pid, so concurrent runs never share one), with no
  supplementary groups, set *before* bwrap runs, so RLIMIT_NPROC is enforced (it is not for root) and programs
  cannot read root-only files (e.g. /root, including this checkout if it lives there). When the run ends,
  anything still running under that uid is SIGKILLed.
- bwrap gives it new user, pid, network, ipc, uts and cgroup namespaces (`--unshare-all`), no capabilities,
  only a loopback network interface (so 127.0.0.1 is the sandbox's own, not the host's), a read-only view of
  `/`, a private size-capped tmpfs on /tmp, a fresh /dev and /proc, a cleared environment, and one writable
  scratch directory (`/tmp/w`, a per-worker host directory that the executor wipes).
- Every program gets rlimits: address space 4 GiB (8 GiB for java/javac and node/tsc, whose runtimes reserve
  far more than they use), 128 processes per uid (256 for Java), 16 MiB per file written (which also caps
  stdout/stderr: they go to files, of which the verdict keeps the first 2 KiB), CPU seconds = timeout + 1,
  256 open files, no core files. The tmpfs on /tmp holds at most 256 MiB.
- A wall-clock timeout per step; afterwards the in-sandbox supervisor SIGKILLs every process left in the
  sandbox's pid namespace. If the sandbox itself dies (a program killed its supervisor), the namespace dies
  with it (`--die-with-parent` and pid-namespace teardown) and the worker starts a new one.

What it does NOT protect against:
- Kernel exploits (namespaces and rlimits are only as strong as the kernel); no seccomp filter is installed.
- Reading world-readable host files (the root file system is visible, read-only).
- Total memory across many processes of one program: RLIMIT_AS is per process and RLIMIT_NPROC caps the count,
  so the worst case is nproc x as; no cgroup memory limit is set.
- CPU or disk contention with the host (no cgroup CPU/IO limits). The scratch dir lives on the host's /tmp
  and has no quota: a program can write many files of up to 16 MiB each there until its timeout (they are
  deleted after it).
- Side channels and timing. Programs of one worker run one after another in the same sandbox; the scratch
  directory and /tmp are wiped and every leftover process is killed between them, but they share the uid, so
  a program could in principle observe a previous program's leftovers in a race we did not foresee. The
  compile servers share the worker's uid and scratch dir too (in their own pid namespace).
When not root, bwrap runs as the current user: RLIMIT_NPROC is then not set (it would count all of the
user's processes), and the uid separation above does not apply.
Without `allow_unsandboxed`, a missing bwrap is an error; with it (CLI: `--unsafe-no-sandbox`), programs run
as plain child processes with the same rlimits and timeouts but no namespaces at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rewardranker.errors import SandboxError

BWRAP = "/usr/bin/bwrap"
SANDBOX_PYTHON = "/usr/bin/python3"  # Debian's interpreter: world-readable and free of pyenv shims
SUPERVISOR = Path(__file__).with_name("supervisor.py")
TMPFS_BYTES = 256 << 20
CAP_BYTES = 2048  # MultiPL-E keeps about 2 KiB of each stream
PATH_ENV = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Limits:
    """Per-process rlimits for one step (bytes / count / seconds)."""

    as_bytes: int = 4 << 30
    nproc: int = 128
    fsize: int = 16 << 20
    nofile: int = 256

    def as_dict(self, cpu_s: int, with_nproc: bool) -> dict[str, int]:
        d = {"as": self.as_bytes, "fsize": self.fsize, "nofile": self.nofile, "cpu": cpu_s, "core": 0}
        if with_nproc:
            d["nproc"] = self.nproc
        return d


@dataclass
class StepResult:
    """Outcome of one command: exit code (-signal if killed, -1 on timeout), capped output, wall time."""

    exit_code: int
    timed_out: bool
    duration_s: float
    stdout: str = ""
    stderr: str = ""
    stdout_full: bytes = field(default=b"", repr=False)  # first 64 KiB, for status rules that scan stdout
    channel: str = ""  # what the program wrote to fd 3 (the strict verdict rule's evidence), when asked for


def _is_root() -> bool:
    return os.geteuid() == 0


def check_available(sandbox: bool, allow_unsandboxed: bool) -> None:
    """Refuse to run unsandboxed unless explicitly allowed; explain how to get bwrap."""
    if sandbox and not Path(BWRAP).exists():
        raise SandboxError(f"{BWRAP} is missing: install bubblewrap (bash scripts/setup.sh), or pass "
                           "--unsafe-no-sandbox to run untrusted programs without a sandbox")
    if not sandbox and not allow_unsandboxed:
        raise SandboxError("refusing to run untrusted programs without a sandbox: pass --unsafe-no-sandbox "
                           "(API: ExecutionConfig(sandbox=False, allow_unsandboxed=True)) if you really mean it")
    if not Path(SANDBOX_PYTHON).exists():
        raise SandboxError(f"{SANDBOX_PYTHON} is missing: the sandbox supervisor needs Debian's python3")


def publish(toolbox: Path, src: Path, name: str) -> Path:
    """A world-readable copy of a file or folder in the toolbox (bwrap binds as the sandbox uid, which may not
    reach the checkout, e.g. under /root); copied once per content version."""
    src = Path(src)
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    stamp = "|".join(f"{p.relative_to(src.parent)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files[:2000])
    dst = Path(toolbox) / f"{name}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    if not dst.exists():
        tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
        shutil.copytree(src, tmp, symlinks=True) if src.is_dir() else (tmp.mkdir(), shutil.copy2(src, tmp / src.name))
        for p in [tmp, *tmp.rglob("*")]:
            if not p.is_symlink():
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        try:
            os.rename(tmp, dst)
        except OSError:  # another process published it first
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def default_toolbox() -> Path:
    """Where built toolchain artefacts live: $REWARDRANKER_TOOLBOX, else /var/tmp/rewardranker-toolchains-UID
    (not under $HOME: the sandbox uid must be able to reach it)."""
    env = os.environ.get("REWARDRANKER_TOOLBOX")
    return Path(env) if env else Path("/var/tmp") / f"rewardranker-toolchains-{os.geteuid()}"


def prepare_toolbox(toolbox: Path) -> None:
    toolbox = Path(toolbox)
    toolbox.mkdir(parents=True, exist_ok=True)
    os.chmod(toolbox, 0o755)


class Sandbox:
    """A long-lived sandbox for one worker: a supervisor process inside bwrap that runs one step at a time.

    `binds` maps read-only host paths to where programs see them (e.g. a compiled-header cache).
    """

    def __init__(self, uid: int, scratch: Path, sandboxed: bool, binds: dict[Path, str] | None = None,
                 lib: Path | None = None):
        self.uid, self.scratch, self.sandboxed = uid, Path(scratch), sandboxed
        self.lib = Path(lib) if lib else SUPERVISOR.parent  # folder holding a readable supervisor.py
        self.binds = {Path(k): v for k, v in (binds or {}).items()}
        self.proc: subprocess.Popen | None = None
        self.answered = 0  # requests answered; a sandbox that never answers is a set-up error
        self.log = self.scratch.parent / f"sandbox-{uid}.log"
        self.lock = threading.Lock()
        self.scratch.mkdir(parents=True, exist_ok=True)
        if _is_root():
            os.chown(self.scratch, uid, uid)

    # -- paths -----------------------------------------------------------------------------------------
    def inside(self, host: Path) -> str:
        """The path under which a program in this sandbox sees a host path."""
        host = Path(host)
        if not self.sandboxed:
            return str(host)
        if host.is_relative_to(self.scratch):
            return "/tmp/w/" + str(host.relative_to(self.scratch)) if host != self.scratch else "/tmp/w"
        for src, dst in self.binds.items():
            if host.is_relative_to(src):
                rel = host.relative_to(src)
                return dst if str(rel) == "." else f"{dst}/{rel}"
        return str(host)

    # -- lifecycle -------------------------------------------------------------------------------------
    def command(self, argv: list[str]) -> list[str]:
        """`argv` wrapped in this sandbox's bwrap invocation (or returned as is when unsandboxed)."""
        if not self.sandboxed:
            return argv
        cmd = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--bind", str(self.scratch), "/tmp/w",
               "--ro-bind", str(self.lib), "/tmp/rr/lib"]
        for src, dst in self.binds.items():
            cmd += ["--ro-bind", str(src), dst]
        cmd += ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
                "--setenv", "PATH", PATH_ENV, "--setenv", "HOME", "/tmp/w", "--chdir", "/tmp/w", "--"]
        return cmd + argv

    def popen_kwargs(self) -> dict:
        kw: dict = {"process_group": 0}
        if _is_root():
            kw.update(user=self.uid, group=self.uid, extra_groups=[])
        return kw

    def start(self) -> None:
        sup = "/tmp/rr/lib/supervisor.py" if self.sandboxed else str(self.lib / "supervisor.py")
        argv = [SANDBOX_PYTHON, "-I", "-S", sup] + (["--sandboxed"] if self.sandboxed else [])
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, **self.popen_kwargs())

    def close(self) -> None:
        if self.proc is not None:
            _kill(self.proc, grace_s=2.0)  # a clean exit also lets the children's CPU time be accounted
            self.proc = None

    # -- running ---------------------------------------------------------------------------------------
    def run(self, argv: list[str], cwd: Path, timeout_s: float, limits: Limits,
            env: dict[str, str] | None = None, python: bool = False, channel: bool = False) -> StepResult:
        """Run one command inside the sandbox; cwd is a host path under the scratch dir."""
        cwd = Path(cwd)
        out, err = cwd / ".rr-stdout", cwd / ".rr-stderr"
        for stale in (out, err):
            stale.unlink(missing_ok=True)
        req = {"argv": argv, "cwd": self.inside(cwd), "timeout": timeout_s, "python": python,
               "limits": limits.as_dict(int(timeout_s) + 1, with_nproc=_is_root()),
               "stdout": self.inside(out), "stderr": self.inside(err), "env": env or {"PATH": PATH_ENV},
               "channel": channel}
        with self.lock:
            answer = self._ask(req, timeout_s)
        if answer is None:  # the program took the supervisor down with it
            result = StepResult(-9, False, timeout_s, stderr="sandbox supervisor was killed by the program")
        else:
            result = StepResult(int(answer["exit"]), bool(answer["timed_out"]), float(answer["duration"]),
                                channel=str(answer.get("channel", "")))
        result.stdout_full, result.stdout = _read_capped(out)
        result.stderr = _read_capped(err)[1] or result.stderr
        return result

    def _ask(self, req: dict, timeout_s: float) -> dict | None:
        for attempt in range(2):
            if self.proc is None or self.proc.poll() is not None:
                self.close()
                self.start()
            try:
                self.proc.stdin.write((json.dumps(req) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self.close()  # a previous program killed it; retry on a fresh sandbox
                continue
            line = _readline(self.proc.stdout, timeout_s + 30.0)
            if line:
                self.answered += 1
                return json.loads(line)
            self.close()
            break
        if not self.answered:
            raise SandboxError(f"the sandbox did not start: {self.log.read_text(errors='replace')[-600:].strip()}"
                               f" (command: {' '.join(self.command(['python3', 'supervisor.py']))})")
        return None


def kill_uid(uid: int, wait_s: float = 3.0) -> list[int]:
    """SIGKILL every process owned by `uid` (a worker's private uid) until none is left; returns the pids seen.

    bwrap's pid-namespace teardown is asynchronous, so this makes "nothing left running" hold when we return.
    """
    seen: list[int] = []
    deadline = time.monotonic() + wait_s
    while True:
        pids = []
        for name in os.listdir("/proc"):
            try:
                if name.isdigit() and os.stat(f"/proc/{name}").st_uid == uid and _running(name):
                    pids.append(int(name))
            except OSError:
                pass
        if not pids or time.monotonic() > deadline:
            return seen
        for pid in pids:
            seen.append(pid)
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.02)


def _running(pid: str) -> bool:
    """False for a zombie (it runs nothing; its reaper collects it) or a vanished pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _readline(stream, timeout_s: float) -> bytes:
    """Read one line, giving up after `timeout_s` (the supervisor enforces the real timeout)."""
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() if ready else b""


def _kill(proc: subprocess.Popen, grace_s: float = 0.0) -> None:
    """Stop a sandboxed process: close its stdin and wait `grace_s` for a clean exit, then SIGKILL it."""
    if grace_s > 0 and proc.poll() is None:
        try:
            proc.stdin.close()
            proc.wait(timeout=grace_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    proc.wait()
    for s in (proc.stdin, proc.stdout):
        if s:
            try:
                s.close()
            except OSError:
                pass


def _read_capped(path: Path) -> tuple[bytes, str]:
    """(first 64 KiB, its first CAP_BYTES decoded) of an output file; missing file -> empty."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return b"", ""
    return head, head[:CAP_BYTES].decode("utf-8", errors="replace")


def wipe(path: Path) -> None:
    """Empty a scratch directory (it may hold files the program made read-only)."""
    path = Path(path)
    if not path.exists():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, onerror=_force_remove)
        else:
            try:
                child.unlink()
            except OSError:
                pass


def _force_remove(func, p, _exc) -> None:
    try:
        os.chmod(os.path.dirname(p), 0o700)
        func(p)
    except OSError:
        pass


def run_once(sandbox: Sandbox, argv: list[str], cwd: Path, timeout_s: float, limits: Limits,
             env: dict[str, str] | None = None, channel: bool = False) -> StepResult:
    """One command in a fresh bwrap, as a per-program harness would run it (the benchmark's baseline).

    Same namespaces, binds, uid and rlimits as `Sandbox.run`, but a new sandbox per command. With `channel`,
    the command gets a pipe on fd 3 (placed there by a `sh` wrapper) whose content comes back in the result.
    """
    chan = os.pipe() if channel else None
    if chan:
        argv = ["/bin/sh", "-c", f'exec 3>&{chan[1]} {chan[1]}>&-; exec "$@"', "sh", *argv]
    lim = limits.as_dict(int(timeout_s) + 1, with_nproc=_is_root())
    prl = ["/usr/bin/prlimit", f"--as={lim['as']}", f"--fsize={lim['fsize']}", f"--nofile={lim['nofile']}",
           f"--cpu={lim['cpu']}:{lim['cpu'] + 1}", "--core=0"] + ([f"--nproc={lim['nproc']}"] if "nproc" in lim else [])
    inner = ["/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in (env or {"PATH": PATH_ENV}).items()] + argv
    cmd = prl + ["--"] + sandbox.command(inner)
    if sandbox.sandboxed:
        i = cmd.index("--chdir")
        cmd[i + 1] = sandbox.inside(cwd)
    start = time.monotonic()
    with open(Path(cwd) / ".rr-stdout", "wb") as out, open(Path(cwd) / ".rr-stderr", "wb") as err:
        p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             pass_fds=(chan[1],) if chan else (), **sandbox.popen_kwargs())
        if chan:
            os.close(chan[1])
        try:
            code, timed_out = p.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            code, timed_out = -1, True
        _kill(p)
    if sandbox.sandboxed and 128 < code < 160:
        code = 128 - code  # bwrap reports a child killed by signal N as exit 128+N; report -N like Popen does
    res = StepResult(code, timed_out, time.monotonic() - start)
    if chan:
        os.set_blocking(chan[0], False)
        try:
            res.channel = os.read(chan[0], 4096).decode("utf-8", "replace")
        except OSError:
            pass
        os.close(chan[0])
    res.stdout_full, res.stdout = _read_capped(Path(cwd) / ".rr-stdout")
    res.stderr = _read_capped(Path(cwd) / ".rr-stderr")[1]
    return res
