"""C++: MultiPL-E compiles `g++ FILE.cpp -o FILE -std=c++17` (15 s) and runs `./FILE` (15 s).

Status: compile exit != 0 (or compile timeout) -> SyntaxError; run Timeout -> Exception if exit != 0 -> OK.
Fast path: a precompiled `bits/stdc++.h` (built once per g++ version into the toolbox directory, bound
read-only into the sandbox) used through `-include bits/stdc++.h`. MultiPL-E programs start with
`#include<assert.h>` before `#include<bits/stdc++.h>`, and GCC ignores a PCH once real tokens have been seen,
so the forced include is what makes the PCH apply; a real `stdc++.h` (symlink) sits beside the `.gch` so the
program's own `#include<bits/stdc++.h>` still resolves. Forcing the header first changes nothing else: every
MultiPL-E program includes it right after <assert.h>, which it includes itself. Cuts compile CPU about 4x.
Strict rule: between the program and the tests' `int main()` the harness `#undef`s every identifier the tests
and the harness use (so a `#define assert(x)`, `#define candidate(...)` or `#define if` in the program does
not reach them), defines its own `assert` (records the failure and traps: no `__assert_fail`, which a
program can interpose, and no `abort`, whose SIGABRT a handler can catch), renames the tests' `main` and
appends a `main` that calls it and writes the OK message to fd 3 only if every assertion ran and held.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from pathlib import Path

from rewardranker.errors import ToolchainError
from rewardranker.execution.langs.base import Language, count_lines, exit_status, ok_message
from rewardranker.execution.sandbox import StepResult
from rewardranker.runio import content_hash

GXX = "/usr/bin/g++"
STD = "-std=c++17"
PCH_INSIDE = "/tmp/rr/pch"


class Cpp(Language):
    name, ext = "cpp", "cpp"
    tools = (GXX,)
    version_cmds = ((GXX, "--version"),)

    def __init__(self) -> None:
        self.pch_dir: Path | None = None

    def prepare(self, toolbox: Path) -> dict[Path, str]:
        self.pch_dir = build_pch(toolbox, self.version)
        return {self.pch_dir: PCH_INSIDE}

    def compile_argv(self, slot, src: str, fast: bool) -> list[str]:
        out = src.rsplit(".", 1)[0]
        argv = [GXX, src, "-o", out, STD]
        if fast:
            argv[1:1] = ["-I", slot.inside(self.pch_dir), "-include", "bits/stdc++.h"]
        return argv

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [src.rsplit(".", 1)[0]]

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        m = _MAIN.search(tests)
        if m is None:
            return None
        before, body = tests[:m.start()], tests[m.end():]
        n = count_lines(r"^\s*assert\s*\(", body)
        harness = _HARNESS.format(n=nonce)
        undefs = sorted(set(_IDENT.findall(body + harness + " static_cast return main")) - _KEEP)
        ok = ok_message(nonce).encode().decode("unicode_escape")
        return (head + "\n" + before + "".join(f"#undef {u}\n" for u in undefs) + harness
                + f"#define assert(e) __rr_a_{nonce}(static_cast<bool>(e))\n"
                + f"#define main __rr_main_{nonce}\n" + m.group(0) + body
                + f"\n#undef main\nint main() {{ __rr_main_{nonce}(); if (!__rr_fail_{nonce} && __rr_n_{nonce} == {n})"
                + f" write(3, {ok!r}, {len(ok)}); return 0; }}\n".replace("'", '"'))

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return exit_status(comp, run)


_MAIN = re.compile(r"^int\s+main\s*\(\s*\)\s*\{", re.MULTILINE)
_IDENT = re.compile(r"[A-Za-z_]\w*")
_KEEP = frozenset({"NULL", "EOF", "INT_MAX", "INT_MIN", "LLONG_MAX", "LLONG_MIN", "LONG_MAX", "LONG_MIN"})
_HARNESS = """#include <unistd.h>
static int __rr_n_{n} = 0;
static bool __rr_fail_{n} = false;
static void __rr_a_{n}(bool ok) {{ if (!ok) {{ __rr_fail_{n} = true; write(2, "Assertion failed\\n", 17); __builtin_trap(); }} ++__rr_n_{n}; }}
"""


def _stdcpp_header() -> Path:
    out = subprocess.run([GXX, STD, "-x", "c++", "-E", "-H", "-"], input="#include <bits/stdc++.h>\n",
                         capture_output=True, text=True, check=False).stderr
    for line in out.splitlines():
        if line.startswith(". ") and line.endswith("bits/stdc++.h"):
            return Path(line[2:])
    raise ToolchainError("cpp", f"{GXX} -H", "cannot locate bits/stdc++.h")


def build_pch(toolbox: Path, version: str) -> Path:
    """Build (once, under a file lock) `<toolbox>/pch-<id>/bits/stdc++.h.gch`; return the include dir."""
    pch_dir = Path(toolbox) / f"pch-{content_hash(version, STD)[:16]}"
    gch = pch_dir / "bits" / "stdc++.h.gch"
    if gch.exists():
        return pch_dir
    (pch_dir / "bits").mkdir(parents=True, exist_ok=True)
    with open(pch_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not gch.exists():
            header = _stdcpp_header()
            link = pch_dir / "bits" / "stdc++.h"
            if not link.exists():
                link.symlink_to(header)
            tmp = gch.with_suffix(".tmp")
            p = subprocess.run([GXX, STD, "-x", "c++-header", str(header), "-o", str(tmp)],
                               capture_output=True, text=True, check=False)
            if p.returncode != 0:
                raise ToolchainError("cpp", "g++ -x c++-header bits/stdc++.h", p.stderr[-500:])
            os.chmod(tmp, 0o644)
            os.replace(tmp, gch)
    for d in (toolbox, pch_dir, pch_dir / "bits"):
        os.chmod(d, 0o755)
    return pch_dir


LANGUAGE = Cpp()
