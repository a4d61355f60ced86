"""C++: MultiPL-E compiles `g++ FILE.cpp -o FILE -std=c++17` (15 s) and runs `./FILE` (15 s).

Status: compile exit != 0 (or compile timeout) -> SyntaxError; run Timeout -> Exception if exit != 0 -> OK.
Fast path: a precompiled `bits/stdc++.h` (built once per g++ version into the toolbox directory, bound
read-only into the sandbox) used through `-include bits/stdc++.h`. MultiPL-E programs start with
`#include<assert.h>` before `#include<bits/stdc++.h>`, and GCC ignores a PCH once real tokens have been seen,
so the forced include is what makes the PCH apply; a real `stdc++.h` (symlink) sits beside the `.gch` so the
program's own `#include<bits/stdc++.h>` still resolves. Forcing the header first changes nothing else: every
MultiPL-E program includes it right after <assert.h>, which it includes itself. Cuts compile CPU about 4x.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from rewardranker.errors import ToolchainError
from rewardranker.execution.langs.base import Language, exit_status
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

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return exit_status(comp, run)


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
