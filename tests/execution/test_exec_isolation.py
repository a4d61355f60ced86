"""Isolation of the executor (threat model items 1, 2, 3 and 5): attacks written for this suite, each with the
verdict it must get and an innocent program after it in the same worker that must still get its own.

Every execute() call here uses one worker, so all programs of a call run one after another in the same
sandbox and compile servers (grouped by language, in sample order).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.records import Problem, Sample

HOST_DIR = Path("/var/tmp")  # a host folder the sandbox sees read-only


def run(programs: list[tuple[str, str, str]], tmp_path: Path, **cfg) -> dict[str, object]:
    """programs: (name, language, full text) -> verdict by name; one worker, no cache."""
    problems = {name: Problem(name, lang, "", "") for name, lang, _ in programs}
    samples = [Sample(name, 0, text) for name, _, text in programs]
    config = ExecutionConfig(workers=1, use_cache=False, timeout_s=cfg.pop("timeout_s", 5.0), **cfg)
    return {v.problem_id: v for v in execute(problems, samples, config, progress=False)}


def innocent(lang: str, tag: str) -> list[tuple[str, str, str]]:
    """A passing and a failing program of `lang` (distinct text per tag, so none is deduplicated)."""
    body = {
        "py": ("assert 1 + 1 == {v}  # {tag}\n"),
        "js": ("// {tag}\nconst assert = require('node:assert');\nassert.deepEqual(1 + 1, {v});\n"),
        "ts": ("// {tag}\nconst x: number = 1 + 1;\nif (x !== {v}) {{ throw new Error('wrong'); }}\n"),
        "cpp": ("// {tag}\n#include <cassert>\nint main() {{ assert(1 + 1 == {v}); }}\n"),
        "sh": ("# {tag}\n[[ $((1 + 1)) -eq {v} ]] || exit 1\n"),
        "php": ("<?php // {tag}\nif (1 + 1 != {v}) {{ throw new Exception('wrong'); }}\n"),
        "java": ("// {tag}\nclass Problem {{ public static void main(String[] a) {{ if (1 + 1 != {v}) "
                 "throw new AssertionError(); }} }}\n"),
        "cs": ("// {tag}\nusing System.Diagnostics;\nclass Problem {{ static void Main() {{ "
               "Debug.Assert(1 + 1 == {v}); }} }}\n"),
    }[lang]
    return [(f"{tag}/ok", lang, body.format(v=2, tag=tag)), (f"{tag}/wrong", lang, body.format(v=3, tag=tag))]


def assert_innocents_judged(verdicts: dict, tag: str) -> None:
    ok, wrong = verdicts[f"{tag}/ok"], verdicts[f"{tag}/wrong"]
    assert ok.status == "OK" and ok.passed, ok
    assert wrong.status == "Exception" and not wrong.passed, wrong


# ------------------------------------------------------------------ 1. the host never follows a program's path
@pytest.fixture()
def host_secret():
    """A root-only host file, and a host folder with a file in it (what a confused clean-up would delete)."""
    secret = HOST_DIR / f"rr-secret-{uuid.uuid4().hex}"
    secret.write_text("TOPSECRET-HOST-FILE\n")
    os.chmod(secret, 0o600)
    victim = HOST_DIR / f"rr-victim-{uuid.uuid4().hex}"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    yield secret, victim
    secret.unlink()
    (victim / "keep.txt").unlink(missing_ok=True)
    victim.rmdir()


def path_attacks(secret: Path, victim: Path) -> list[tuple[str, str, str]]:
    py_swap = f"""import os
cwd = os.getcwd()
done = []
for name in ('.rr-stdout', '.rr-stderr'):
    try:
        os.symlink('{secret}', name)
        done.append('symlink ' + name)
    except OSError:
        pass
try:
    os.rename(cwd, cwd + '-moved')
    os.symlink('{victim}', cwd)
    done.append('renamed job dir')
except OSError as e:
    print('rename refused:', e.strerror)
for n in range(1, 40):
    for path in (f'../j{{n}}', f'../j{{n}}-2', '../node_modules'):
        try:
            os.symlink('{victim}', path)
            done.append('planted ' + path)
        except OSError:
            pass
print('done:', done)
raise SystemExit(4)
"""
    py_fifo = """import os
for name in ('.rr-stdout', '.rr-stderr', 'out.txt', '/tmp/fifo', '/dev/shm/fifo'):
    try:
        os.mkfifo(name)
    except OSError as e:
        print('mkfifo refused', name, e.strerror)
print('fifos made')
raise SystemExit(5)
"""
    sh_swap = f"""ln -s {secret} .rr-stdout; ln -s {secret} .rr-stderr; mkfifo ../j99 2>/dev/null
cd .. && mv "$OLDPWD" "$OLDPWD-x" 2>/dev/null && ln -s {victim} "$OLDPWD"
echo tried
exit 6
"""
    cpp_swap = f"""#include <unistd.h>
#include <sys/stat.h>
#include <cstdio>
int main() {{
  symlink("{secret}", ".rr-stdout");
  mkfifo(".rr-stderr", 0600);
  int moved = rename(".", "../moved");
  printf("rename %d\\n", moved);
  return 7;
}}
"""
    js_swap = f"""const fs = require('fs');
for (const n of ['.rr-stdout', '.rr-stderr']) {{ try {{ fs.symlinkSync('{secret}', n); }} catch (e) {{}} }}
try {{ fs.renameSync(process.cwd(), process.cwd() + '-x'); }} catch (e) {{ console.log('rename refused', e.code); }}
process.exit(8);
"""
    ts_swap = "declare var require: any;\ndeclare var process: any;\n" + js_swap.replace("exit(8)", "exit(13)")
    php_swap = f"""<?php
@symlink('{secret}', '.rr-stdout');
@symlink('{secret}', '.rr-stderr');
if (!@rename(getcwd(), getcwd() . '-x')) {{ echo "rename refused\\n"; }}
exit(10);
"""
    java_swap = f"""import java.io.File;
import java.nio.file.*;
class Problem {{
  public static void main(String[] a) throws Exception {{
    Files.createSymbolicLink(Paths.get(".rr-stdout"), Paths.get("{secret}"));
    boolean moved = new File(System.getProperty("user.dir")).renameTo(new File("/tmp/w/moved"));
    System.out.println("rename " + moved);
    System.exit(11);
  }}
}}
"""
    cs_swap = f"""using System;
using System.Diagnostics;
using System.IO;
class Problem {{
  static void Main() {{
    Process.Start("/bin/ln", "-s {secret} .rr-stdout").WaitForExit();
    try {{ Directory.Move(Environment.CurrentDirectory, "/tmp/w/moved"); }}
    catch (Exception) {{ Console.WriteLine("rename refused"); }}
    Environment.Exit(12);
  }}
}}
"""
    return [("py_swap", "py", py_swap), ("py_fifo", "py", py_fifo), ("sh_swap", "sh", sh_swap),
            ("cpp_swap", "cpp", cpp_swap), ("js_swap", "js", js_swap), ("ts_swap", "ts", ts_swap),
            ("php_swap", "php", php_swap), ("java_swap", "java", java_swap), ("cs_swap", "cs", cs_swap)]


@pytest.mark.slow
def test_programs_cannot_make_the_host_follow_their_paths(tmp_path, host_secret):
    secret, victim = host_secret
    programs = []
    for name, lang, text in path_attacks(secret, victim):
        programs += [(name, lang, text), *innocent(lang, f"after_{name}")]
    verdicts = run(programs, tmp_path)
    expected_exit = {"py_swap": 4, "py_fifo": 5, "sh_swap": 6, "cpp_swap": 7, "js_swap": 8, "ts_swap": 13,
                     "php_swap": 10, "java_swap": 11, "cs_swap": 12}
    for name, code in expected_exit.items():
        v = verdicts[name]
        assert v.exit_code == code and not v.passed, v
        assert v.status == "Exception" or name == "cs_swap", v  # MultiPL-E's C# rule ignores the exit code
        assert "TOPSECRET" not in v.stdout + v.stderr, v
        assert_innocents_judged(verdicts, f"after_{name}")
    assert "rename refused: Permission denied" in verdicts["py_swap"].stdout
    assert "done: ['symlink .rr-stdout', 'symlink .rr-stderr']" in verdicts["py_swap"].stdout
    assert "rename -1" in verdicts["cpp_swap"].stdout and "rename false" in verdicts["java_swap"].stdout
    for name in ("php_swap", "cs_swap"):
        assert "rename refused" in verdicts[name].stdout, verdicts[name]
    assert verdicts["py_fifo"].stdout.endswith("fifos made\n")
    assert (victim / "keep.txt").read_text() == "keep" and secret.exists()


# ------------------------------------------------------------------ 2. no host environment inside the sandbox
SECRET_PREFIX = "rr-fake-secret-"


def env_probes() -> list[tuple[str, str, str]]:
    """Programs that look for the secret in their environment and in every readable /proc/*/environ (pid 1 is
    bwrap); each prints `pid1=<bytes read>` and FOUND or CLEAN."""
    p = SECRET_PREFIX
    return [
        ("env_py", "py", f"""import os
found = any('{p}' in v for v in os.environ.values())
n = 0
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            data = open(f'/proc/{{pid}}/environ', 'rb').read()
        except OSError:
            continue
        n = len(data) if pid == '1' else n
        found = found or b'{p}' in data
print(f'pid1={{n}}', 'FOUND' if found else 'CLEAN')
"""),
        ("env_sh", "sh", f"""n=$(wc -c < /proc/1/environ)
if env | grep -q {p} || cat /proc/[0-9]*/environ 2>/dev/null | grep -aq {p}; then r=FOUND; else r=CLEAN; fi
echo "pid1=$n $r"
"""),
        ("env_js", "js", f"""const fs = require('fs');
let found = Object.values(process.env).some((v) => v.includes('{p}'));
const one = fs.readFileSync('/proc/1/environ');
for (const pid of fs.readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d))) {{
  try {{ found = found || fs.readFileSync(`/proc/${{pid}}/environ`).includes('{p}'); }} catch (e) {{}}
}}
console.log(`pid1=${{one.length}}`, found ? 'FOUND' : 'CLEAN');
"""),
        ("env_ts", "ts", f"""declare var require: any;
declare var process: any;
const fs = require('fs');
let found: boolean = Object.values(process.env).some((v: any) => String(v).includes('{p}'));
const one = fs.readFileSync('/proc/1/environ');
found = found || one.includes('{p}');
console.log(`pid1=${{one.length}}`, found ? 'FOUND' : 'CLEAN');
"""),
        ("env_php", "php", f"""<?php
$found = false;
foreach (getenv() as $k => $v) {{ if (strpos($v, '{p}') !== false) {{ $found = true; }} }}
$one = file_get_contents('/proc/1/environ');
if (strpos($one, '{p}') !== false) {{ $found = true; }}
echo 'pid1=' . strlen($one) . ' ' . ($found ? 'FOUND' : 'CLEAN') . "\\n";
"""),
        ("env_cpp", "cpp", f"""#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
extern char **environ;
int main() {{
  bool found = false;
  for (char **e = environ; *e; ++e) found = found || std::string(*e).find("{p}") != std::string::npos;
  std::ifstream f("/proc/1/environ", std::ios::binary);
  std::string one((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  found = found || one.find("{p}") != std::string::npos;
  std::cout << "pid1=" << one.size() << (found ? " FOUND" : " CLEAN") << std::endl;
}}
"""),
        ("env_java", "java", f"""import java.nio.file.*;
class Problem {{
  public static void main(String[] a) throws Exception {{
    boolean found = System.getenv().values().stream().anyMatch(v -> v.contains("{p}"));
    byte[] one = Files.readAllBytes(Paths.get("/proc/1/environ"));
    found = found || new String(one, "ISO-8859-1").contains("{p}");
    System.out.println("pid1=" + one.length + (found ? " FOUND" : " CLEAN"));
  }}
}}
"""),
        ("env_cs", "cs", f"""using System;
using System.Collections;
using System.IO;
class Problem {{
  static void Main() {{
    bool found = false;
    foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
      found = found || e.Value.ToString().Contains("{p}");
    byte[] one = File.ReadAllBytes("/proc/1/environ");
    found = found || System.Text.Encoding.ASCII.GetString(one).Contains("{p}");
    Console.WriteLine("pid1=" + one.Length + (found ? " FOUND" : " CLEAN"));
  }}
}}
"""),
    ]


@pytest.mark.slow
def test_no_program_sees_the_hosts_environment(tmp_path, monkeypatch):
    secret = SECRET_PREFIX + uuid.uuid4().hex
    for name in ("OPENAI_API_KEY", "HF_TOKEN", "RR_TEST_SECRET"):
        monkeypatch.setenv(name, secret)
    verdicts = run(env_probes(), tmp_path, timeout_s=10.0)
    assert len(verdicts) == 8
    for v in verdicts.values():
        assert v.status == "OK" and v.passed, v
        pid1_bytes, result = v.stdout.split()
        assert result == "CLEAN", v  # neither its environment nor any /proc/*/environ holds the secret
        assert 0 < int(pid1_bytes.removeprefix("pid1=")) < 200, v  # pid 1's environment was read: PATH only


# ------------------------------------------------------------------ 3. seccomp, and a supervisor nobody can touch
PY_TRACER = """import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(ret):
    return 'ok' if ret != -1 else os.strerror(ctypes.get_errno())
sup = os.getppid()  # the supervisor (this program was forked or exec'd by it)
out = [f'sup={sup}']
out.append('attach:' + errno_of(libc.ptrace(16, sup, None, None)))           # PTRACE_ATTACH
out.append('seize:' + errno_of(libc.ptrace(0x4206, sup, None, None)))        # PTRACE_SEIZE
out.append('traceme:' + errno_of(libc.ptrace(0, 0, None, None)))             # PTRACE_TRACEME
for path in (f'/proc/{sup}/mem', f'/proc/{sup}/fd/1', f'/proc/{sup}/environ'):
    try:
        open(path, 'r+b' if path.endswith('mem') else 'rb').close()
        out.append(path + ':opened')
    except OSError as e:
        out.append(path + ':' + e.strerror)
for target, sig in ((sup, signal.SIGSTOP), (sup, signal.SIGKILL), (1, signal.SIGKILL), (-1, signal.SIGKILL),
                    (-sup, signal.SIGKILL)):
    try:
        os.kill(target, sig)
        out.append(f'kill {target}:ok')
    except OSError as e:
        out.append(f'kill {target}:' + e.strerror)
try:
    signal.pidfd_send_signal(os.open(f'/proc/{sup}', os.O_RDONLY | os.O_DIRECTORY), signal.SIGKILL)
    out.append('pidfd:ok')
except OSError as e:
    out.append('pidfd:' + e.strerror)
try:
    import resource
    resource.prlimit(sup, resource.RLIMIT_NOFILE, (0, 0))
    out.append('prlimit:ok')
except OSError as e:
    out.append('prlimit:' + e.strerror)
print(';'.join(out))
assert 1 + 1 == 3  # a wrong answer: it must stay a failure
"""

PY_SYSCALLS = """import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
calls = {'unshare(NEWUSER)': (272, 0x10000000), 'unshare(NEWNS)': (272, 0x20000), 'setns': (308, 0, 0),
         'mount': (165, b'none', b'/tmp', b'tmpfs', 0, 0), 'keyctl': (250, 0, 0), 'add_key': (248, 0, 0, 0, 0, 0),
         'bpf': (321, 0, 0, 0), 'perf_event_open': (298, 0, 0, -1, -1, 0), 'userfaultfd': (323, 0),
         'io_uring_setup': (425, 1, 0), 'process_vm_readv': (310, 1, 0, 0, 0, 0, 0), 'ptrace': (101, 16, 1, 0, 0),
         'clone(NEWUSER)': (56, 0x10000000 | 17, 0, 0, 0, 0), 'clone3': (435, 0, 0), 'chroot': (161, b'/tmp'),
         'init_module': (175, 0, 0, 0), 'kexec_load': (246, 0, 0, 0, 0)}
res = []
for name, (nr, *args) in calls.items():
    r = libc.syscall(nr, *args)
    res.append(f"{name}={'ok' if r != -1 else os.strerror(ctypes.get_errno())}")
print(';'.join(res))
raise SystemExit(9)
"""

CPP_TRACER = """#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
#include <signal.h>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
int main() {
  pid_t sup = getppid();
  long a = ptrace(PTRACE_ATTACH, sup, nullptr, nullptr);
  printf("attach=%s ", a == -1 ? strerror(errno) : "ok");
  long s = ptrace(PTRACE_SEIZE, 1, nullptr, nullptr);
  printf("seize1=%s ", s == -1 ? strerror(errno) : "ok");
  int k = kill(sup, SIGSTOP);
  printf("stop=%s\\n", k == -1 ? strerror(errno) : "ok");
  fflush(stdout);
  pid_t child = fork();  // a persistent tracer would outlive this program: it must not
  if (child == 0) { for (int i = 0; i < 50; ++i) { ptrace(PTRACE_ATTACH, sup, nullptr, nullptr); usleep(20000); } _exit(0); }
  assert(1 + 1 == 3);
}
"""

SH_KILLER = """kill -STOP $PPID 2>/dev/null && echo stopped
kill -9 $PPID 2>/dev/null && echo killed
kill -9 1 2>/dev/null && echo killed1
kill -9 -1 2>/dev/null && echo killedall
echo alive
exit 3
"""


@pytest.mark.slow
def test_programs_cannot_trace_or_kill_the_supervisor(tmp_path):
    programs = [("py_tracer", "py", PY_TRACER), *innocent("py", "after_py_tracer"),
                ("py_syscalls", "py", PY_SYSCALLS), *innocent("py", "after_py_syscalls"),
                ("cpp_tracer", "cpp", CPP_TRACER), *innocent("cpp", "after_cpp_tracer"),
                ("sh_killer", "sh", SH_KILLER), *innocent("sh", "after_sh_killer")]
    verdicts = run(programs, tmp_path)
    tracer = verdicts["py_tracer"]
    assert tracer.status == "Exception" and not tracer.passed and "AssertionError" in tracer.stderr, tracer
    out = dict(item.split(":", 1) for item in tracer.stdout.strip().split(";")[1:])
    assert tracer.stdout.startswith("sup=2;"), tracer.stdout
    assert out["attach"] == out["seize"] == out["traceme"] == "Operation not permitted", out
    assert all(out[f"/proc/2/{f}"] == "Permission denied" for f in ("mem", "fd/1", "environ")), out
    assert all(out[f"kill {t}"] == "Operation not permitted" for t in (2, 1, -1, -2)), out
    assert out["prlimit"] == out["pidfd"] == "Operation not permitted", out

    calls = dict(item.split("=", 1) for item in verdicts["py_syscalls"].stdout.strip().split(";"))
    assert verdicts["py_syscalls"].exit_code == 9
    assert calls.pop("clone3") == "Function not implemented"  # glibc falls back to clone, which is checked
    assert set(calls.values()) == {"Operation not permitted"}, calls

    cpp = verdicts["cpp_tracer"]
    assert cpp.status == "Exception" and cpp.exit_code == -6 and not cpp.passed, cpp
    assert cpp.stdout.startswith("attach=Operation not permitted seize1=Operation not permitted "
                                 "stop=Operation not permitted"), cpp
    sh = verdicts["sh_killer"]
    assert sh.status == "Exception" and sh.exit_code == 3 and sh.stdout == "alive\n", sh
    for tag in ("after_py_tracer", "after_py_syscalls", "after_cpp_tracer", "after_sh_killer"):
        assert_innocents_judged(verdicts, tag)


# ------------------------------------------------------------------ 5. every program starts from the same state
LEFTOVER_PLACES = ["/tmp", "/tmp/rr", "/dev", "/dev/shm", "/tmp/w", "..", "."]

PY_LITTER = f"""import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
made = []
for d in {LEFTOVER_PLACES!r}:
    for name, text in (('package.json', json.dumps({{'type': 'module'}})), ('litter.txt', 'x')):
        try:
            with open(os.path.join(d, name), 'w') as f:
                f.write(text)
            made.append(os.path.join(d, name))
        except OSError:
            pass
    try:
        os.makedirs(os.path.join(d, 'node_modules/@types/evil'), exist_ok=True)
        made.append(os.path.join(d, 'node_modules'))
    except OSError:
        pass
try:
    os.chmod('/tmp', 0)
    os.unlink('/dev/stdout')
    os.symlink('/dev/null', '/dev/stdout')
except OSError:
    pass
shm = libc.shmget(0x5252, 4096, 0o1600)  # IPC_CREAT | 0600
print(len(made), 'shm' if shm >= 0 else 'no-shm')
raise SystemExit(2)
"""

PY_CHECK = f"""import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
left = [os.path.join(d, n) for d in {LEFTOVER_PLACES!r} for n in ('package.json', 'litter.txt', 'node_modules')
        if os.path.lexists(os.path.join(d, n))]
left += [f'/dev/shm/{{n}}' for n in os.listdir('/dev/shm')]
assert os.access('/tmp', os.W_OK), 'tmp mode'
assert os.readlink('/dev/stdout') == '/proc/self/fd/1', os.readlink('/dev/stdout')
assert libc.shmget(0x5252, 0, 0) == -1, 'shm segment survived'
assert left == [], left
print('clean')
"""

TS_TYPES = """declare var require: any;
declare var process: any;
const fs = require('fs');
const dts = 'interface Array<T> { broken: number }\\ndeclare function assert(x: string): never;\\n';
for (const d of ['/tmp/w', '..', '/tmp', '/tmp/rr']) {
  try {
    fs.mkdirSync(d + '/node_modules/@types/evil', { recursive: true });
    fs.writeFileSync(d + '/node_modules/@types/evil/index.d.ts', dts);
    fs.writeFileSync(d + '/package.json', '{"type": "module"}');
  } catch (e) {}
}
process.exit(3);
"""

JS_MODULE = """const fs = require('fs');
for (const d of ['/tmp/w', '..', '/tmp', '/tmp/rr', '/dev/shm']) {
  try { fs.writeFileSync(d + '/package.json', '{"type": "module"}'); } catch (e) {}
}
process.exit(3);
"""


@pytest.mark.slow
def test_leftovers_never_reach_a_later_program(tmp_path):
    programs = [("py_litter", "py", PY_LITTER), ("py_check", "py", PY_CHECK), *innocent("py", "after_py_litter"),
                ("ts_types", "ts", TS_TYPES), *innocent("ts", "after_ts_types"),
                ("js_module", "js", JS_MODULE), *innocent("js", "after_js_module")]
    verdicts = run(programs, tmp_path)
    litter = verdicts["py_litter"]
    assert litter.exit_code == 2 and litter.stdout.split()[1] == "shm", litter
    assert int(litter.stdout.split()[0]) >= 8, litter  # it did leave files in /tmp, /tmp/rr, /dev, /dev/shm, .
    assert verdicts["py_check"].passed and verdicts["py_check"].stdout == "clean\n", verdicts["py_check"]
    assert verdicts["ts_types"].status == "Exception" and verdicts["ts_types"].exit_code == 3, verdicts["ts_types"]
    assert verdicts["js_module"].status == "Exception" and verdicts["js_module"].exit_code == 3
    for tag in ("after_py_litter", "after_ts_types", "after_js_module"):
        assert_innocents_judged(verdicts, tag)
