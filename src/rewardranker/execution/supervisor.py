"""In-sandbox supervisor: runs one command at a time on request, then kills everything it left behind.

Started once per worker inside the worker's bubblewrap sandbox as `python3 -I -S supervisor.py` (stdlib only,
no rewardranker imports: the package is not importable in there). It reads one JSON request per line on
stdin and answers one JSON line on stdout. Keeping the sandbox alive amortises bwrap's set-up (5-15 ms per
program) and, for Python programs, lets a forked child run the program in-process ("fork server"), which
skips the interpreter's start-up. The child is a fresh `os.fork()` of this interpreter started with the same
flags as a plain `python3 -I -S file.py` run, so a program sees the same interpreter.

Protecting itself from the programs it runs (same uid): it is not dumpable (PR_SET_DUMPABLE 0: no ptrace, no
/proc/PID/mem or /fd access by other processes of the uid), ptrace and process_vm_* are denied to the whole
sandbox by bwrap's seccomp filter, and each program gets a stacked filter ("filter" in the request) that
denies signals and prlimit aimed at this process or at pid 1. Programs write stdout/stderr into memory files
(memfd) that only this process and the program hold, so nothing in the scratch dir decides what the host reads.
It is a child subreaper, so orphans come back to it: it reaps them and counts their CPU time. After each
program (when "clean"), /tmp and /dev are restored to what they held at start and SysV IPC objects removed.

Request keys: argv, cwd, timeout, limits {as, nproc, fsize, cpu, nofile}, env, python (bool: run argv[-1]
in-process instead of exec'ing argv), head (bytes of each stream to return), clean (bool), filter (hex BPF),
channel (bool: give the program a pipe on fd 3, the strict verdict rule's evidence channel, which only the
harness's epilogue writes to; the answer's "channel" holds the first 4 KiB written to it).
First line written: {"ready": true}. Answer keys: exit (int; -signal when killed by a signal; -1 on timeout),
timed_out, duration, cpu (seconds of
CPU of the program's processes), stdout, stderr (base64 of their first `head` bytes), stdout_bytes,
stderr_bytes; or infra (a message) when the supervisor itself failed.
"""

import atexit
import base64
import ctypes
import json
import os
import resource
import select
import signal
import stat
import sys
import time

_LIMITS = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
           "cpu": resource.RLIMIT_CPU, "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}
_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER, SECCOMP_MODE_FILTER = 4, 22, 36, 2
CLEAN_ROOTS = ("/tmp", "/dev")
CHANNEL_FD = 3


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _prctl(option, arg):
    if _LIBC.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _install_filter(bpf):
    """Stack a seccomp filter (raw BPF built by libseccomp on the host) on this process and its children."""
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if _LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "installing the program's seccomp filter")


def _child(req, out_fd, err_fd, channel_w=None):
    """Runs in the forked child: new session, limits, redirected fds, stacked filter; never returns."""
    try:
        os.setsid()
        for name, value in req.get("limits", {}).items():
            hard = value + 1 if name == "cpu" else value  # SIGXCPU at the soft limit, SIGKILL 1 s later
            resource.setrlimit(_LIMITS[name], (value, hard))
        os.chdir(req["cwd"])
        fd0 = os.open("/dev/null", os.O_RDONLY)
        for src, dst in ((fd0, 0), (out_fd, 1), (err_fd, 2)):
            os.dup2(src, dst)
        if channel_w is not None:
            os.dup2(channel_w, CHANNEL_FD)
        os.closerange(CHANNEL_FD + (channel_w is not None), 1 << 16)  # the protocol pipes must not leak
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        if req.get("filter"):
            _install_filter(bytes.fromhex(req["filter"]))
        if req.get("python") and not _has_nul(req["argv"][-1]):  # compile() rejects NUL as python3 does not
            _prctl(PR_SET_DUMPABLE, 1)  # as after exec
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as a fresh interpreter sets it
            _run_python(req["argv"][-1])
        env = req.get("env") or {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        os.execve(req["argv"][0], req["argv"], env)
    except BaseException as e:  # exec failed: report like a shell would
        try:
            os.write(2, f"supervisor: cannot run {req.get('argv')}: {e}\n".encode())
        finally:
            os._exit(127)


def _has_nul(path):
    try:
        with open(path, "rb") as f:
            return b"\0" in f.read()
    except OSError:
        return False


def _run_python(path, _exit=os._exit, _SystemExit=SystemExit, _BaseException=BaseException,
                _excepthook=sys.__excepthook__, _run_exitfuncs=atexit._run_exitfuncs, _index=int.__index__,
                _int=int, _isinstance=isinstance, _type=type, _print=print, _sys=sys, _modules=sys.modules):
    """Run a Python file as `__main__` the way `python3 -I -S path` does, then exit with its status.

    The program runs in this interpreter, so everything the exit status depends on is bound here, as default
    arguments, before the program starts: a program that patches `os._exit`, `builtins.SystemExit`, the
    `traceback` module, `atexit` or this supervisor's globals cannot change the status. What it can still do
    is what it could do in a fresh `python3`: exit itself (`os._exit(0)`) from its own code, from an atexit
    function or from a `threading._shutdown` it replaced. The strict verdict rule does not trust exit 0 alone.
    """
    rc = 1
    try:
        import builtins
        import types

        depth, f = 0, _sys._getframe()
        while f is not None:
            depth, f = depth + 1, f.f_back
        _sys.setrecursionlimit(1000 + depth)  # a fresh interpreter starts at depth ~1: keep the same headroom
        mod = types.ModuleType("__main__")
        mod.__file__, mod.__builtins__ = path, builtins
        _sys.modules["__main__"], _sys.argv = mod, [path]
        _sys.stdin = open(0, "r", closefd=False)
        _sys.stdout = open(1, "w", closefd=False)
        _sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")
        try:
            with open(path, "rb") as fh:
                code = compile(fh.read(), path, "exec", dont_inherit=True)
            exec(code, mod.__dict__)
            rc = 0
        except _SystemExit as e:
            rc = 1
            rc = _exit_code(e, _index, _int, _isinstance, _print, _sys)
        except _BaseException as e:
            rc = 1
            tb = e.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
                tb = tb.tb_next  # hide this supervisor's own frames, as a fresh interpreter would
            _excepthook(_type(e), e, tb)
        _finalize(_run_exitfuncs, _sys, _modules)
    finally:
        _exit(rc)


def _exit_code(e, _index, _int, _isinstance, _print, _sys):
    """SystemExit's status as CPython computes it (an int subclass cannot fake its value)."""
    code = e.code
    if code is None:
        return 0
    if _isinstance(code, _int):
        return _index(code) & 0xFF
    try:
        _print(code, file=_sys.stderr)
    except BaseException:  # noqa: BLE001, S110 -- whatever the program's object does, the status stays 1
        pass
    return 1


def _finalize(_run_exitfuncs, _sys, _modules):
    """What interpreter shutdown does that a program can observe: join threads, atexit, flush.

    Every failure is swallowed (as CPython's shutdown does): the status was decided before."""
    threading = dict.get(_modules, "threading")  # the real module table, as CPython's shutdown uses
    try:
        if threading is not None:
            threading._shutdown()  # looked up at exit, as CPython's own shutdown does
    except BaseException:  # noqa: BLE001, S110
        pass
    try:
        _run_exitfuncs()  # the real atexit registry, whatever the program did to the atexit module
    except BaseException:  # noqa: BLE001, S110
        pass
    for stream in (_sys.stdout, _sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110
            pass


def _wait(pid, timeout):
    """Wait for `pid` up to `timeout` seconds; returns (wait status or None, timed_out)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0.0, timeout) * 1000):
            return None, True
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1], False


def _kill_leftovers(pid):
    """SIGKILL the child's group, then every other process in this sandbox (all are ours), and reap."""
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(-1, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    me = os.getpid()
    for _ in range(200):  # a fork bomb may still be forking while we kill: repeat until only we remain
        _reap()
        others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me) and _alive(p)]
        if not others:
            _reap()
            return
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.005)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


# -- clean state: what the sandbox held before the first program is what every program finds -------------
def snapshot(roots=CLEAN_ROOTS):
    """path -> (type, mode, symlink target) of every entry under `roots`, not descending into mount points."""
    out = {}
    for root in roots:
        _walk(root, os.lstat(root).st_dev, out)
    return out


def _walk(path, dev, out):
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    out[path] = (kind, stat.S_IMODE(st.st_mode), os.readlink(path) if kind == stat.S_IFLNK else None)
    if kind == stat.S_IFDIR and st.st_dev == dev:
        for name in os.listdir(path):
            _walk(os.path.join(path, name), dev, out)


def restore(baseline, roots=CLEAN_ROOTS):
    """Remove whatever is not in `baseline` under `roots`, and put back what a program removed or changed."""
    now = snapshot(roots)
    for path in sorted(now, key=len, reverse=True):
        if path not in baseline or baseline[path][0] != now[path][0] or baseline[path][2] != now[path][2]:
            _remove(path, now[path][0])
    for path in sorted(baseline, key=len):
        kind, mode, target = baseline[path]
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        try:
            if st is None and kind == stat.S_IFDIR:
                os.mkdir(path, mode)
            elif st is None and kind == stat.S_IFLNK:
                os.symlink(target, path)
            if kind == stat.S_IFDIR and (st is None or stat.S_IMODE(st.st_mode) != mode):
                os.chmod(path, mode)
        except OSError:
            pass
    _remove_sysv_ipc()


def _remove(path, kind):
    if kind == stat.S_IFDIR:
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
        for name in os.listdir(path):
            child = os.path.join(path, name)
            _remove(child, stat.S_IFMT(os.lstat(child).st_mode))
        try:
            os.rmdir(path)
        except OSError:
            pass
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _remove_sysv_ipc():
    """Delete the SysV shared memory segments, semaphore sets and message queues programs left (they outlive
    processes in the sandbox's IPC namespace)."""
    for kind, call in (("shm", lambda i: _LIBC.shmctl(i, 0, None)), ("sem", lambda i: _LIBC.semctl(i, 0, 0)),
                       ("msg", lambda i: _LIBC.msgctl(i, 0, None))):  # IPC_RMID = 0
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            call(int(row.split()[1]))


def _cpu_of_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _take_output(fd, head):
    size = os.fstat(fd).st_size
    data = os.pread(fd, head, 0)
    os.close(fd)
    return base64.b64encode(data).decode("ascii"), size


def _read_channel(fd):
    """What the program's fd 3 received (non-blocking: a leftover writer cannot hang us), capped at 4 KiB."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def handle(req, sandboxed, baseline=None):
    out_fd = os.memfd_create("stdout", os.MFD_CLOEXEC)
    err_fd = os.memfd_create("stderr", os.MFD_CLOEXEC)
    cpu_before = _cpu_of_children()
    start = time.monotonic()
    channel = os.pipe() if req.get("channel") else None
    pid = os.fork()
    if pid == 0:
        _child(req, out_fd, err_fd, channel[1] if channel else None)
    if channel:
        os.close(channel[1])
    status, timed_out = _wait(pid, float(req["timeout"]))
    duration = time.monotonic() - start
    restart = False
    if sandboxed:
        _kill_leftovers(pid)
        if baseline is not None and req.get("clean", True):
            try:
                restore(baseline)
            except (OSError, RecursionError, ValueError):  # e.g. a tree deeper than PATH_MAX:
                restart = True  # the host replaces this sandbox by a fresh one instead
    else:
        try:
            os.killpg(pid, signal.SIGKILL)  # unsandboxed: only the child's own process group can be found
        except (ProcessLookupError, PermissionError):
            pass
        if status is None:
            status = os.waitpid(pid, 0)[1]
    _reap()
    head = int(req.get("head", 65536))
    answer = {"exit": -1 if timed_out else os.waitstatus_to_exitcode(status), "timed_out": timed_out,
              "duration": duration, "cpu": _cpu_of_children() - cpu_before, "restart": restart}
    answer["stdout"], answer["stdout_bytes"] = _take_output(out_fd, head)
    answer["stderr"], answer["stderr_bytes"] = _take_output(err_fd, head)
    if channel:
        answer["channel"] = _read_channel(channel[0])
    return answer


def main():
    sandboxed = "--sandboxed" in sys.argv
    inp = os.fdopen(os.dup(0), "r")
    out = os.fdopen(os.dup(1), "w")
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    baseline = snapshot() if sandboxed else None
    if sandboxed and os.getpid() != 2:
        sys.exit(f"supervisor: expected pid 2 in the sandbox, got {os.getpid()} (the program filter names it)")
    out.write(json.dumps({"ready": True}) + "\n")  # tells the host the sandbox is up
    out.flush()
    for line in inp:
        try:
            answer = handle(json.loads(line), sandboxed, baseline)
        except Exception as e:  # noqa: BLE001 -- anything failing here is the harness's fault, not the program's
            answer = {"infra": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
