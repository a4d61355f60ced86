"""In-sandbox supervisor: runs one command at a time on request, then kills everything it left behind.

Started once per worker inside the worker's bubblewrap sandbox as `python3 -I -S supervisor.py` (stdlib only,
no rewardranker imports: the package is not importable in there). It reads one JSON request per line on
stdin and answers one JSON line on stdout. Keeping the sandbox alive amortises bwrap's set-up (5-15 ms per
program) and, for Python programs, lets a forked child run the program in-process ("fork server"), which
skips the interpreter's start-up. The child is a fresh `os.fork()` of this interpreter started with the same
flags as a plain `python3 -I -S file.py` run, so a program sees the same interpreter.

Request keys: argv, cwd, timeout, limits {as, nproc, fsize, cpu, nofile}, stdout, stderr (file paths), env,
python (bool: run argv[-1] in-process instead of exec'ing argv), channel (bool: give the program a pipe on fd 3,
the strict verdict rule's evidence channel, which only the harness's epilogue writes to).
Answer keys: exit (int; -signal when killed by a signal; -1 on timeout), timed_out, duration, channel (the
first 4 KiB written to fd 3, when asked for).
"""

import atexit
import json
import os
import resource
import select
import signal
import sys
import time

CHANNEL_FD = 3

_LIMITS = {"as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
           "cpu": resource.RLIMIT_CPU, "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}


def _child(req, channel_w=None):
    """Runs in the forked child: new session, limits, redirected fds; never returns."""
    try:
        os.setsid()
        for name, value in req.get("limits", {}).items():
            hard = value + 1 if name == "cpu" else value  # SIGXCPU at the soft limit, SIGKILL 1 s later
            resource.setrlimit(_LIMITS[name], (value, hard))
        os.chdir(req["cwd"])
        fd0 = os.open("/dev/null", os.O_RDONLY)
        fd1 = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        fd2 = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for src, dst in ((fd0, 0), (fd1, 1), (fd2, 2)):
            os.dup2(src, dst)
        if channel_w is not None:
            os.dup2(channel_w, CHANNEL_FD)
        os.closerange(CHANNEL_FD + (channel_w is not None), 256)  # the protocol pipes must not leak
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        if req.get("python"):
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as a fresh interpreter sets it
            _run_python(req["argv"][-1])
        env = req.get("env") or {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        os.execve(req["argv"][0], req["argv"], env)
    except BaseException as e:  # exec failed: report like a shell would
        try:
            os.write(2, f"supervisor: cannot run {req.get('argv')}: {e}\n".encode())
        finally:
            os._exit(127)


def _run_python(path, _exit=os._exit, _SystemExit=SystemExit, _BaseException=BaseException,
                _excepthook=sys.__excepthook__, _run_exitfuncs=atexit._run_exitfuncs, _index=int.__index__,
                _int=int, _isinstance=isinstance, _type=type, _sys=sys):
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
            rc = _exit_code(e, _index, _int, _isinstance, _sys)
        except _BaseException as e:
            rc = 1
            tb = e.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
                tb = tb.tb_next  # hide this supervisor's own frames, as a fresh interpreter would
            _excepthook(_type(e), e, tb)
        _finalize(_run_exitfuncs, _sys)
    finally:
        _exit(rc)


def _exit_code(e, _index, _int, _isinstance, _sys):
    """SystemExit's status as CPython computes it (an int subclass cannot fake its value)."""
    code = e.code
    if code is None:
        return 0
    if _isinstance(code, _int):
        return _index(code) & 0xFF
    try:
        print(code, file=_sys.stderr)
    except BaseException:
        pass
    return 1


def _finalize(_run_exitfuncs, _sys):
    """What interpreter shutdown does that a program can observe: join threads, atexit, flush."""
    threading = _sys.modules.get("threading")
    try:
        if threading is not None:
            threading._shutdown()  # looked up at exit, as CPython's own shutdown does
    except BaseException:
        pass
    try:
        _run_exitfuncs()  # the real atexit registry, whatever the program did to the atexit module
    except BaseException:
        pass
    for stream in (_sys.stdout, _sys.stderr):
        try:
            stream.flush()
        except BaseException:
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


def _clean_tmp():
    """Remove what the program left in the sandbox's private /tmp (the scratch dir is wiped by the host)."""
    import shutil

    for name in os.listdir("/tmp"):
        if name not in ("w", "rr"):
            path = os.path.join("/tmp", name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _reap():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def _read_channel(fd):
    """What the program's fd 3 received (non-blocking: a leftover writer cannot hang us), capped at 4 KiB."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def handle(req, sandboxed):
    start = time.monotonic()
    channel = os.pipe() if req.get("channel") else None
    pid = os.fork()
    if pid == 0:
        _child(req, channel[1] if channel else None)
    if channel:
        os.close(channel[1])
    status, timed_out = _wait(pid, float(req["timeout"]))
    duration = time.monotonic() - start
    if sandboxed:
        _kill_leftovers(pid)
        _clean_tmp()
    else:
        try:
            os.killpg(pid, signal.SIGKILL)  # unsandboxed: only the child's own process group can be found
        except (ProcessLookupError, PermissionError):
            pass
        if status is None:
            status = os.waitpid(pid, 0)[1]
    answer = {"channel": _read_channel(channel[0])} if channel else {}
    if timed_out:
        _reap()
        return {"exit": -1, "timed_out": True, "duration": duration, **answer}
    return {"exit": os.waitstatus_to_exitcode(status), "timed_out": False, "duration": duration, **answer}


def main():
    sandboxed = "--sandboxed" in sys.argv
    inp = os.fdopen(os.dup(0), "r")
    out = os.fdopen(os.dup(1), "w")
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for line in inp:
        req = json.loads(line)
        out.write(json.dumps(handle(req, sandboxed)) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
