"""TypeScript: MultiPL-E compiles `tsc --target esnext FILE.ts` (writes FILE.js; 15 s) and runs `node FILE.js`.

Status: compile exit != 0 (type errors too) -> SyntaxError; run: Timeout -> OK if exit 0 -> (stderr scan)
ERR_ASSERTION -> "AssertionError", "SyntaxError", "ReferenceError", else Exception; AssertionError and
ReferenceError are reported as Exception (this project has four statuses).
tsc is pinned to typescript 5.9.3 (./node_modules, from package.json): tsc >= 6 is strict by default and
always emits "use strict", which would fail programs MultiPL-E accepted.
Fast path: one long-lived node process per worker (`ts_compile_server.js`, itself sandboxed) that keeps the
parsed lib .d.ts files and calls the typescript API with tsc's options for each program, one program per
compilation (no batching, so no `--moduleDetection force` and no strict-mode output): it reports the same
diagnostics and emits the same JavaScript as a per-program tsc, minus node's start-up and lib parsing.
"""

from __future__ import annotations

from pathlib import Path

from rewardranker.errors import ToolchainError
from rewardranker.execution.langs.base import Job, Language, StepRunner, compiled_or
from rewardranker.execution.langs.js import NODE, node_status, strict_node_program
from rewardranker.execution.sandbox import Limits, StepResult, publish

SERVER_SRC = Path(__file__).with_name("ts_compile_server.js")
TS_INSIDE = "/tmp/rr/typescript"


def typescript_dir() -> Path:
    """The pinned typescript package: ./node_modules/typescript of the checkout (or $REWARDRANKER_TYPESCRIPT)."""
    import os

    env = os.environ.get("REWARDRANKER_TYPESCRIPT")
    if env:
        return Path(env)
    for base in (Path(__file__).resolve().parents[4], Path.cwd()):
        if (base / "node_modules" / "typescript" / "bin" / "tsc").exists():
            return base / "node_modules" / "typescript"
    return Path(__file__).resolve().parents[4] / "node_modules" / "typescript"


class TypeScript(Language):
    name, ext = "ts", "ts"
    tools = (NODE,)
    run_limits = compile_limits = Limits(as_bytes=8 << 30)

    def __init__(self) -> None:
        self.ts_dir = typescript_dir()

    def check(self) -> None:
        super().check()
        if not (self.ts_dir / "bin" / "tsc").exists():
            raise ToolchainError("ts", str(self.ts_dir / "bin" / "tsc"),
                                 "not found; run `bash scripts/setup.sh` (npm install of typescript@5.9.3)")

    @property
    def version_cmds(self):  # type: ignore[override]
        return ((NODE, "--version"), (NODE, str(self.ts_dir / "bin" / "tsc"), "--version"))

    def prepare(self, toolbox: Path) -> dict[Path, str]:
        self.published = publish(toolbox, self.ts_dir, "typescript")
        return {self.published: TS_INSIDE}

    def compile_argv(self, slot, src: str, fast: bool) -> list[str]:
        return [NODE, f"{slot.inside(self.published)}/bin/tsc", "--target", "esnext", src]

    def compile(self, slot, job: Job, fast: bool, step: StepRunner) -> StepResult | None:
        server = slot.server("ts") if fast else None
        if server is None:
            return super().compile(slot, job, fast, step)
        argv = self.compile_argv(slot, slot.inside(job.src), fast)
        return server.compile(argv[2:], job.workdir, self.compile_timeout_s)  # tsc's own arguments

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [NODE, src.rsplit(".", 1)[0] + ".js"]

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        return strict_node_program(head, tests, nonce, typed=True)

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        return compiled_or(comp, run) or node_status(run, scan_stdout=False)  # type: ignore[arg-type]


LANGUAGE = TypeScript()
