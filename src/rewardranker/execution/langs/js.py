"""JavaScript: MultiPL-E runs `node FILE.js` with a **5 s** timeout (subprocess.run, not its 15 s runner).

Status: Timeout -> OK if exit 0 -> otherwise MultiPL-E scans stdout+stderr for ERR_ASSERTION (its
"AssertionError"), "SyntaxError", "ReferenceError", else Exception. This project's Status has four values, so
AssertionError and ReferenceError are reported as Exception; SyntaxError stays SyntaxError.
node (V8) needs a large address space: RLIMIT_AS is 4 GiB for node.
"""

from __future__ import annotations

from rewardranker.execution.langs.base import Language
from rewardranker.execution.sandbox import Limits, StepResult

NODE = "/usr/bin/node"


def node_status(run: StepResult, scan_stdout: bool = True) -> tuple[str, int | None]:
    """MultiPL-E's JS/TS run-step rule, mapped onto the four statuses (its TS rule scans stderr only)."""
    if run.timed_out:
        return "Timeout", run.exit_code
    if run.exit_code == 0:
        return "OK", 0
    text = (run.stdout_full.decode("utf-8", "replace") if scan_stdout else "") + run.stderr
    if "ERR_ASSERTION" in text:
        return "Exception", run.exit_code
    if "SyntaxError" in text:
        return "SyntaxError", run.exit_code
    return "Exception", run.exit_code


class JavaScript(Language):
    name, ext = "js", "js"
    run_timeout_s = 5.0
    run_limits = Limits(as_bytes=8 << 30)
    tools = (NODE,)
    version_cmds = ((NODE, "--version"),)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [NODE, src]

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        assert run is not None
        return node_status(run)


LANGUAGE = JavaScript()
