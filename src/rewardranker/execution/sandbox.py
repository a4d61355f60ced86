"""Run untrusted programs in a bubblewrap sandbox, one long-lived sandbox per worker.

The threat model (what is guaranteed and what is not) is in `rewardranker/execution/__init__.py`; this is how.
When the executor runs as root (the normal case on the project's machines):
- The worker's processes (its supervisor, programs and compile servers) run as the worker's own unprivileged
  uid, from a block of 64 held with an exclusive flock (/run/lock/rewardranker-uids/block-N) for the whole
  execute() call, so concurrent executors never share a uid whatever their pids; no supplementary groups;
  set *before* bwrap runs, so RLIMIT_NPROC is enforced (it is not for root) and programs cannot read root-only
  files. When the run ends, anything still running under that uid is SIGKILLed.
- bwrap is started with an environment of PATH only (so the sandbox's pid 1, whose /proc/1/environ programs can
  read, holds nothing of the host's) and gives new user, pid, network, ipc, uts and cgroup namespaces
  (`--unshare-all`), no capabilities, only a loopback network interface, a read-only view of `/`, a private
  size-capped tmpfs on /tmp, a fresh /dev and /proc, a cleared environment, a seccomp filter
  (`--seccomp FD`, built by libseccomp from `syscall_filter.py`), and one scratch root (`/tmp/w`) that is
  owned by root, so programs can enter it but not write, rename or pre-create anything in it.
- Each program gets a fresh job directory `/tmp/w/j<N>` made by the host (mkdir relative to a directory
  descriptor, owned by the worker's uid) holding only its source; afterwards the host removes the tree
  relative to directory descriptors, never following a link (`remove_tree`). stdout and stderr go to memory
  files held by the supervisor and come back through its pipe: the host opens no path a program could have
  replaced by a link or a FIFO.
- Every program gets rlimits: address space 4 GiB (8 GiB for java/javac and node/tsc, whose runtimes reserve
  far more than they use), 128 processes per uid (256 for Java), 16 MiB per file written (which also caps
  stdout/stderr; the verdict keeps the first 2 KiB, status rules see the first 64 KiB), CPU seconds =
  timeout + 1, 256 open files, no core files. The tmpfs on /tmp holds at most 256 MiB.
- A wall-clock timeout per step; afterwards the in-sandbox supervisor SIGKILLs every process left in the
  sandbox's pid namespace and restores /tmp, /dev (with /dev/shm) and SysV IPC to their state at start. If
  the sandbox itself dies, the namespace dies with it (`--die-with-parent` and pid-namespace teardown), the
  run gets InfraError for that attempt and the worker starts a new sandbox.
When not root, bwrap runs as the current user: RLIMIT_NPROC is then not set (it would count all of the
user's processes), there is no separate uid, and the scratch root is writable by programs (they share the
executor's uid), so job directories can be tampered with; run as root for the guarantees above.
Without `allow_unsandboxed`, a missing bwrap is an error; with it (CLI: `--unsafe-no-sandbox`), programs run
as plain child processes with the same rlimits and timeouts but no namespaces at all.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import select
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rewardranker.errors import SandboxError

BWRAP = "/usr/bin/bwrap"
SANDBOX_PYTHON = "/usr/bin/python3"  # Debian's interpreter: world-readable and free of pyenv shims
SUPERVISOR = Path(__file__).with_name("supervisor.py")
SYSCALL_FILTER = Path(__file__).with_name("syscall_filter.py")
TMPFS_BYTES = 256 << 20
CAP_BYTES = 2048  # MultiPL-E keeps about 2 KiB of each stream
PATH_ENV = "/usr/local/bin:/usr/bin:/bin"
HOST_ENV = {"PATH": PATH_ENV}  # the whole environment bwrap (the sandbox's pid 1) is started with
HEAD_BYTES = 65536  # how much of each stream comes back to the host
SUPERVISOR_PID = 2  # bwrap is pid 1 of the sandbox's pid namespace and its child, the supervisor, pid 2


class InfraError(SandboxError):
    """The sandbox, its supervisor or a compile server failed: the program was not judged (never cached)."""


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
    stderr_full: bytes = field(default=b"", repr=False)  # first 64 KiB of stderr
    cpu_s: float | None = None  # CPU time of the step's processes (user + system), when known
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
    reach the checkout, e.g. under /root); copied once per content version. Copies are staged in a fresh
    uniquely named folder, so what a killed or concurrent executor left behind never gets in the way."""
    src = Path(src)
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
    stamp = "|".join(f"{p.relative_to(src.parent)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files[:2000])
    dst = Path(toolbox) / f"{name}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    if not dst.exists():
        stage = Path(tempfile.mkdtemp(dir=toolbox, prefix=f".{dst.name}.tmp"))
        tmp = stage / "x"
        shutil.copytree(src, tmp, symlinks=True) if src.is_dir() else (tmp.mkdir(), shutil.copy2(src, tmp / src.name))
        for p in [tmp, *tmp.rglob("*")]:
            if not p.is_symlink():
                os.chmod(p, 0o755 if p.is_dir() else 0o644)
        try:
            os.rename(tmp, dst)
        except OSError:  # another process published it first
            pass
        shutil.rmtree(stage, ignore_errors=True)
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


@functools.cache
def seccomp_filters() -> tuple[bytes, bytes]:
    """(filter for every sandboxed process, extra filter stacked for each program) as raw BPF, built once per
    process by libseccomp's bindings, which exist for Debian's python3 (package python3-seccomp)."""
    out = []
    for args in (["sandbox"], ["program", str(SUPERVISOR_PID)]):
        p = subprocess.run([SANDBOX_PYTHON, "-I", str(SYSCALL_FILTER), *args], capture_output=True, env=HOST_ENV,
                           check=False)
        if p.returncode != 0 or not p.stdout or len(p.stdout) % 8:
            raise SandboxError("cannot build the seccomp filter (apt-get install python3-seccomp, or run "
                               f"`bash scripts/setup.sh`): {p.stderr.decode(errors='replace').strip()[-300:]}")
        out.append(p.stdout)
    return out[0], out[1]


def _memfd(data: bytes) -> int:
    """An inheritable in-memory file holding `data`, positioned at its start (for `bwrap --seccomp FD`)."""
    fd = os.memfd_create("rr-seccomp", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class Sandbox:
    """A long-lived sandbox for one worker: a supervisor process inside bwrap that runs one step at a time.

    `binds` maps read-only host paths to where programs see them (e.g. a compiled-header cache).
    `seccomp`: install the syscall filters; `clean_state`: restore /tmp, /dev and SysV IPC after each program.
    """

    def __init__(self, uid: int, scratch: Path, sandboxed: bool, binds: dict[Path, str] | None = None,
                 lib: Path | None = None, seccomp: bool = True, clean_state: bool = True):
        self.uid, self.scratch, self.sandboxed = uid, Path(scratch), sandboxed
        self.lib = Path(lib) if lib else SUPERVISOR.parent  # folder holding a readable supervisor.py
        self.binds = {Path(k): v for k, v in (binds or {}).items()}
        self.seccomp = seccomp and sandboxed
        self.clean_state = clean_state
        self.proc: subprocess.Popen | None = None
        self.log = self.scratch.parent / f"sandbox-{uid}.log"
        self.lock = threading.Lock()
        self.scratch.mkdir(parents=True, exist_ok=True)
        if _is_root() and sandboxed:  # the program's uid may enter the scratch root but not write it
            os.chown(self.scratch, 0, 0)
            os.chmod(self.scratch, 0o755)
        elif _is_root():
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
    def command(self, argv: list[str], chdir: str = "/tmp/w", seccomp_fd: int | None = None,
                status_fd: int | None = None) -> list[str]:
        """`argv` wrapped in this sandbox's bwrap invocation (or returned as is when unsandboxed); bwrap reports
        `{"child-pid": N}` on `status_fd` once the program started."""
        if not self.sandboxed:
            return argv
        cmd = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--bind", str(self.scratch), "/tmp/w",
               "--ro-bind", str(self.lib), "/tmp/rr/lib"]
        for src, dst in self.binds.items():
            cmd += ["--ro-bind", str(src), dst]
        if seccomp_fd is not None:
            cmd += ["--seccomp", str(seccomp_fd)]
        if status_fd is not None:
            cmd += ["--json-status-fd", str(status_fd)]
        cmd += ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
                "--setenv", "PATH", PATH_ENV, "--setenv", "HOME", "/tmp/w", "--chdir", chdir, "--"]
        return cmd + argv

    def popen(self, argv: list[str], chdir: str = "/tmp/w", prefix: list[str] | None = None,
              pass_fds: tuple[int, ...] = (), status_fd: int | None = None, **kw) -> subprocess.Popen:
        """Start `argv` in a new bwrap of this sandbox's configuration, with the seccomp filter when enabled and
        nothing of the host's environment (bwrap itself, the sandbox's pid 1, gets only PATH)."""
        fd = _memfd(seccomp_filters()[0]) if self.seccomp else None
        fds = pass_fds + (() if fd is None else (fd,)) + (() if status_fd is None else (status_fd,))
        try:
            return subprocess.Popen((prefix or []) + self.command(argv, chdir, fd, status_fd), env=HOST_ENV,
                                    pass_fds=fds, **kw, **self.popen_kwargs())
        finally:
            if fd is not None:
                os.close(fd)

    def popen_kwargs(self) -> dict:
        kw: dict = {"process_group": 0}
        if _is_root():
            kw.update(user=self.uid, group=self.uid, extra_groups=[])
        return kw

    def start(self) -> None:
        sup = "/tmp/rr/lib/supervisor.py" if self.sandboxed else str(self.lib / "supervisor.py")
        argv = [SANDBOX_PYTHON, "-I", "-S", sup] + (["--sandboxed"] if self.sandboxed else [])
        with open(self.log, "ab") as log:
            self.proc = self.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        if _readline(self.proc.stdout, 60.0).strip() != b'{"ready": true}':  # a set-up error, not a program's
            self.close()
            raise SandboxError(f"the sandbox did not start: {self.log.read_text(errors='replace')[-600:].strip()}"
                               f" (command: {' '.join(self.command(argv))})")

    def close(self) -> None:
        if self.proc is not None:
            _kill(self.proc, grace_s=2.0)  # a clean exit also lets the children's CPU time be accounted
            self.proc = None

    # -- running ---------------------------------------------------------------------------------------
    def run(self, argv: list[str], cwd: Path, timeout_s: float, limits: Limits,
            env: dict[str, str] | None = None, python: bool = False, channel: bool = False) -> StepResult:
        """Run one command inside the sandbox; cwd is a host path under the scratch dir.

        Its output comes back through the supervisor's pipe (the supervisor keeps it in memory files the
        program cannot rename), so the host opens nothing the program could have replaced.
        Raises InfraError when the sandbox or its supervisor failed.
        """
        req = {"argv": argv, "cwd": self.inside(cwd), "timeout": timeout_s, "python": python,
               "limits": limits.as_dict(int(timeout_s) + 1, with_nproc=_is_root()),
               "env": env or {"PATH": PATH_ENV}, "head": HEAD_BYTES, "clean": self.clean_state, "channel": channel}
        if self.seccomp:
            req["filter"] = seccomp_filters()[1].hex()
        with self.lock:
            answer = self._ask(req, timeout_s)
        if answer is None:  # the program took the supervisor down with it, or it died
            raise InfraError(f"the sandbox died while running {argv[0]} (see {self.log})")
        try:
            if "infra" in answer:
                raise InfraError(f"sandbox supervisor: {answer['infra']}")
            result = StepResult(int(answer["exit"]), bool(answer["timed_out"]), float(answer["duration"]),
                                cpu_s=float(answer["cpu"]), channel=str(answer.get("channel", "")))
            result.stdout_full = base64.b64decode(answer["stdout"])[:HEAD_BYTES]
            result.stderr_full = base64.b64decode(answer["stderr"])[:HEAD_BYTES]
        except (KeyError, TypeError, ValueError) as e:
            raise InfraError(f"sandbox supervisor sent a malformed answer: {e!r}") from None
        result.stdout = _decode_head(result.stdout_full)
        result.stderr = _decode_head(result.stderr_full)
        if answer.get("restart"):  # the supervisor could not restore the clean state: start afresh next time
            with self.lock:
                self.close()
        return result

    def _ask(self, req: dict, timeout_s: float) -> dict | None:
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self.start()
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            return None
        line = _readline(self.proc.stdout, timeout_s + 30.0)
        try:
            answer = json.loads(line) if line else None
        except ValueError:
            answer = {"infra": f"unreadable answer {line[:200]!r}"}
        if isinstance(answer, dict):
            return answer
        self.close()
        return None


def kill_uid(uid: int | set[int], wait_s: float = 3.0) -> list[int]:
    """SIGKILL every process owned by `uid` (a worker's private uid, or a set of them) until none is left;
    returns the pids seen.

    bwrap's pid-namespace teardown is asynchronous, so this makes "nothing left running" hold when we return.
    """
    uids = {uid} if isinstance(uid, int) else set(uid)
    seen: list[int] = []
    deadline = time.monotonic() + wait_s
    while True:
        pids = []
        for name in os.listdir("/proc"):
            try:
                if name.isdigit() and os.stat(f"/proc/{name}").st_uid in uids and _running(name):
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


def _decode_head(head: bytes) -> str:
    return head[:CAP_BYTES].decode("utf-8", errors="replace")


def _read_fd_head(fd: int) -> bytes:
    """The first HEAD_BYTES of a host-owned anonymous file (written by a program through its descriptor)."""
    return os.pread(fd, HEAD_BYTES, 0)


# -- job directories: made and removed by the host, relative to directory descriptors, never following links --
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_dir(path: Path) -> int:
    """A descriptor for a host-made directory (refuses a symlink)."""
    return os.open(path, _DIR_FLAGS)


def make_job_dir(root_fd: int, stem: str, uid: int | None) -> str:
    """Create a fresh directory under `root_fd`, named `stem` or `stem-2`, `stem-3`... if that exists (a
    leftover never stops a run); owned by `uid` when given. Returns its name."""
    for n in range(1, 1000):
        name = stem if n == 1 else f"{stem}-{n}"
        try:
            os.mkdir(name, 0o755, dir_fd=root_fd)
        except FileExistsError:
            continue
        if uid is not None:
            os.chown(name, uid, uid, dir_fd=root_fd, follow_symlinks=False)
        return name
    raise SandboxError(f"cannot create a job directory {stem!r}: 999 names taken")


def write_new_file(dir_fd: int, name: str, data: bytes, uid: int | None) -> None:
    """Create `name` under `dir_fd` (must not exist, not through a link) holding `data`."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if uid is not None:
            os.fchown(fd, uid, uid)
    finally:
        os.close(fd)


def remove_tree(parent_fd: int, name: str) -> None:
    """Delete `name` (a file or a whole tree) under `parent_fd` without following any link or opening
    anything but directories (O_NOFOLLOW), iteratively (any depth), fixing modes a program removed.

    Why not shutil.rmtree: it recurses (a program can nest directories deeper than Python's recursion limit)
    and keeps one descriptor per level.
    """
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        _unlink(parent_fd, name)
        return
    fd = _open_subdir(parent_fd, name)
    stack: list[tuple[str, int, int, list[str]]] = []  # (name, dev, ino, subdirectories left) per level
    here = (name, st.st_dev, st.st_ino)
    pending = _clear_files(fd)
    while True:
        if pending:
            sub = pending.pop()
            try:
                sub_fd = _open_subdir(fd, sub)
            except OSError:
                _unlink(fd, sub)
                continue
            sst = os.fstat(sub_fd)
            stack.append((*here, pending))
            os.close(fd)
            fd, here, pending = sub_fd, (sub, sst.st_dev, sst.st_ino), _clear_files(sub_fd)
            continue
        if not stack:
            os.close(fd)
            try:
                os.rmdir(name, dir_fd=parent_fd)
            except OSError:
                pass
            return
        up = os.open("..", _DIR_FLAGS, dir_fd=fd)
        os.close(fd)
        pname, pdev, pino, pending = stack.pop()
        ust = os.fstat(up)
        if (ust.st_dev, ust.st_ino) != (pdev, pino):  # moved under us: stop rather than delete elsewhere
            os.close(up)
            raise SandboxError(f"job tree changed while being removed ({name})")
        try:
            os.rmdir(here[0], dir_fd=up)
        except OSError:
            pass
        fd, here = up, (pname, pdev, pino)


def _open_subdir(dir_fd: int, name: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:  # a program removed the mode bits (only matters when not root)
        os.chmod(name, 0o700, dir_fd=dir_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _clear_files(dir_fd: int) -> list[str]:
    """Unlink every non-directory entry under `dir_fd`; return the names of its subdirectories."""
    subdirs = []
    with os.scandir(dir_fd) as it:
        entries = list(it)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            subdirs.append(e.name)
        else:
            _unlink(dir_fd, e.name)
    return subdirs


def _unlink(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def run_once(sandbox: Sandbox, argv: list[str], cwd: Path, timeout_s: float, limits: Limits,
             env: dict[str, str] | None = None, channel: bool = False) -> StepResult:
    """One command in a fresh bwrap, as a per-program harness would run it (the benchmark's baseline).

    Same namespaces, binds, uid, rlimits and seccomp filter as `Sandbox.run`, but a new sandbox per command.
    Output goes to anonymous host files (no name in the scratch dir, so nothing the program can swap).
    With `channel`, the command gets a pipe on fd 3 (placed there by a `bash` wrapper), read back afterwards.
    Raises InfraError when bwrap itself failed (e.g. "Can't fork for pid 1" while the previous program's processes
    still count against the uid's process limit): bwrap's status pipe then reports no exit code. Its writer is
    bwrap's monitor, outside the program's pid namespace, so a program can add to it but not suppress it.
    """
    chan = os.pipe() if channel else None
    if chan:
        if _is_root():  # Java and C# reopen it through /dev/fd/3, which checks the pipe's owner
            os.fchown(chan[1], sandbox.uid, sandbox.uid)
        move = f"exec 3>&{chan[1]} {chan[1]}>&-; " if chan[1] != 3 else ""
        argv = ["/usr/bin/bash", "-c", move + 'exec "$@"', "bash", *argv]  # dash: one-digit fds only
    lim = limits.as_dict(int(timeout_s) + 1, with_nproc=_is_root())
    prl = ["/usr/bin/prlimit", f"--as={lim['as']}", f"--fsize={lim['fsize']}", f"--nofile={lim['nofile']}",
           f"--cpu={lim['cpu']}:{lim['cpu'] + 1}", "--core=0"] + ([f"--nproc={lim['nproc']}"] if "nproc" in lim else [])
    inner = ["/usr/bin/env", "-i"] + [f"{k}={v}" for k, v in (env or {"PATH": PATH_ENV}).items()] + argv
    status = os.pipe() if sandbox.sandboxed else None
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        fds = (chan[1],) if chan else ()
        p = sandbox.popen(inner, chdir=sandbox.inside(cwd), prefix=prl + ["--"], stdin=subprocess.DEVNULL,
                          stdout=out, stderr=err, pass_fds=fds, status_fd=status[1]) if status else \
            subprocess.Popen(prl + ["--"] + inner, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             env=HOST_ENV, pass_fds=fds, **sandbox.popen_kwargs())
        if chan:
            os.close(chan[1])
        if status:
            os.close(status[1])
        try:
            code, timed_out = p.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            code, timed_out = -1, True
        _kill(p)
        if status and b'"exit-code"' not in _read_all(status[0]) and not timed_out:
            raise InfraError(f"bwrap failed before starting {argv[0]}: {_read_fd_head(err.fileno())[-300:]!r}")
        if sandbox.sandboxed and 128 < code < 160:
            code = 128 - code  # bwrap reports a child killed by signal N as exit 128+N; report -N like Popen does
        res = StepResult(code, timed_out, time.monotonic() - start)
        res.stdout_full, res.stderr_full = _read_fd_head(out.fileno()), _read_fd_head(err.fileno())
    res.stdout, res.stderr = _decode_head(res.stdout_full), _decode_head(res.stderr_full)
    if chan:
        os.set_blocking(chan[0], False)
        try:
            res.channel = os.read(chan[0], 4096).decode("utf-8", "replace")
        except OSError:
            pass
        os.close(chan[0])
    return res


def _read_all(fd: int) -> bytes:
    """What a pipe holds now (never waiting for a writer that is still alive), then close it."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)
