"""Hostile programs are contained and recorded, the host is unharmed, and the run carries on.

Per language at least one attack; Python tries all of them: fork bomb, memory bomb, infinite loop, endless
output, writing outside the scratch dir, connecting to a host socket on 127.0.0.1, killing its parent.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from exec_helpers import uid_processes

from rewardranker.execution import ExecutionConfig, execute
from rewardranker.execution.runner import uid_block
from rewardranker.records import Problem, Sample

ESCAPE_DIR = Path("/var/tmp")  # outside /tmp (private in the sandbox), world-writable on the host


def _programs(port: int, marker: Path) -> dict[str, tuple[str, str]]:
    """name -> (language, full program text)."""
    return {
        "py_fork_bomb": ("py", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"),
        # one allocation beyond the address-space limit (a gradual bomb is stopped by the same limit, but
        # only after filling it, which takes seconds on a loaded machine)
        "py_memory_bomb": ("py", "chunks = [bytearray(1 << 20)]\nchunks.append(bytearray(16 << 30))\n"),
        "py_infinite_loop": ("py", "while True:\n    pass\n"),
        "py_endless_output": ("py", "while True:\n    print('x' * 4096)\n"),
        "py_write_outside": ("py", f"for p in ['{marker}', '/etc/{marker.name}', '/usr/{marker.name}']:\n"
                                   "    try:\n        open(p, 'w').write('escaped')\n"
                                   "        print('WROTE', p)\n    except OSError as e:\n        print('blocked', p, e)\n"
                                   "raise SystemExit(3)\n"),
        "py_socket": ("py", f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                            "s.sendall(b'escaped')\nprint('CONNECTED')\n"),
        "py_kill_parent": ("py", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                 "os.kill(-1, signal.SIGKILL)\n"),
        "cpp_fork_bomb": ("cpp", "#include <unistd.h>\nint main() { while (1) fork(); }\n"),
        "java_memory_bomb": ("java", "import java.util.*;\nclass Problem { public static void main(String[] a) {\n"
                                     "  List<long[]> l = new ArrayList<>();\n  l.add(new long[Integer.MAX_VALUE - 16]);\n} }\n"),
        "php_write_outside": ("php", f"<?php\nif (@file_put_contents('{marker}.php', 'x') !== false) {{ echo 'WROTE'; }}\n"
                                     "throw new Exception('blocked');\n"),
        "ts_endless_output": ("ts", "while (true) { console.log('y'.repeat(4096)); }\n"),
        "js_socket": ("js", f"const s = require('net').connect({port}, '127.0.0.1');\n"
                            "s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });\n"
                            "s.on('error', (e) => { console.log(e.code); process.exit(3); });\n"),
        "cs_infinite_loop": ("cs", "class Problem { static void Main() { while (true) {} } }\n"),
        "sh_fork_bomb_kill_parent": ("sh", "kill -9 $PPID 2>/dev/null\nbomb() { bomb | bomb & }\nbomb\nsleep 30\n"),
    }


@pytest.fixture()
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    yield srv
    srv.close()



@pytest.mark.slow
def test_hostile_programs_are_contained(tmp_path, listener):
    marker = ESCAPE_DIR / f"rewardranker-escape-{uuid.uuid4().hex}"
    programs = _programs(listener.getsockname()[1], marker)
    problems = {name: Problem(name, lang, "", "") for name, (lang, _) in programs.items()}
    problems["sentinel"] = Problem("sentinel", "py", "", "")
    samples = [Sample(name, 0, text) for name, (_, text) in programs.items()]
    samples.append(Sample("sentinel", 0, "assert sum(range(10)) == 45\nprint('still running')\n"))
    started = time.monotonic()
    cfg = ExecutionConfig(workers=2, timeout_s=2.0, cache_path=tmp_path / "c.sqlite")
    verdicts = {v.problem_id: v for v in execute(problems, samples, cfg, progress=False)}
    assert time.monotonic() - started < 150

    for v in verdicts.values():
        assert not v.passed or v.problem_id == "sentinel", v
    assert verdicts["sentinel"].passed and verdicts["sentinel"].stdout == "still running\n"
    assert verdicts["py_infinite_loop"].status == "Timeout"
    assert verdicts["cs_infinite_loop"].status == "Timeout"
    assert verdicts["py_fork_bomb"].status == "Timeout"
    assert verdicts["cpp_fork_bomb"].status in ("Timeout", "Exception")
    assert "MemoryError" in verdicts["py_memory_bomb"].stderr
    assert "OutOfMemoryError" in verdicts["java_memory_bomb"].stderr
    for name in ("py_endless_output", "ts_endless_output"):  # stopped by the file-size limit, output capped
        v = verdicts[name]
        assert v.status in ("Exception", "Timeout") and len(v.stdout) <= 2048, v
    assert "File too large" in verdicts["py_endless_output"].stderr
    out = verdicts["py_write_outside"].stdout
    assert "WROTE" not in out and out.count("blocked") == 3 and verdicts["py_write_outside"].exit_code == 3
    assert "WROTE" not in verdicts["php_write_outside"].stdout
    assert not marker.exists() and not Path(f"{marker}.php").exists()
    assert "CONNECTED" not in verdicts["py_socket"].stdout and "ConnectionRefusedError" in verdicts["py_socket"].stderr
    assert verdicts["js_socket"].stdout.strip() == "ECONNREFUSED"
    with pytest.raises(socket.timeout):
        listener.accept()  # nothing from inside the sandboxes reached the host's 127.0.0.1
    assert verdicts["py_kill_parent"].status == "Exception"
    assert not verdicts["sh_fork_bomb_kill_parent"].passed
    time.sleep(0.5)
    assert uid_processes(uid_block()) == []  # nothing left running
