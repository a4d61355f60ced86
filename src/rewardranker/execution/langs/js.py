"""JavaScript: MultiPL-E runs `node FILE.js` with a **5 s** timeout (subprocess.run, not its 15 s runner).

Status: Timeout -> OK if exit 0 -> otherwise MultiPL-E scans stdout+stderr for ERR_ASSERTION (its
"AssertionError"), "SyntaxError", "ReferenceError", else Exception. This project's Status has four values, so
AssertionError and ReferenceError are reported as Exception; SyntaxError stays SyntaxError.
node (V8) needs a large address space: RLIMIT_AS is 4 GiB for node.
Strict rule (JavaScript and TypeScript): a one-line prologue *before* the program takes node's own
`assert.deepEqual` and `fs.writeSync` (a program that patches `require('node:assert').deepEqual` or `fs`
later changes nothing the harness uses); each `assert.<method>(...)` statement of the tests calls the genuine
method and counts itself; after the tests an epilogue writes the OK message to fd 3 only if every assertion
ran and held. `process.exit(0)`, an `uncaughtException` handler or an `exit` listener never reach it.
"""

from __future__ import annotations

import re

from rewardranker.execution.langs.base import Language, ok_message
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


_ASSERT = re.compile(r"^([ \t]*)assert\.(\w+)\((.*)\);[ \t]*$", re.MULTILINE)


def strict_node_program(head: str, tests: str, nonce: str, typed: bool) -> str | None:
    """Prologue + program + tests whose assertions use the genuine node:assert + epilogue (JS and TS)."""
    body, n = _ASSERT.subn(rf"\1__rrA_{nonce}.\2(\3); __rrS_{nonce}.n++;", tests)
    if not n:
        return None
    any_ = ": any" if typed else ""
    prologue = ((f"declare var require{any_};" if typed else "")
                + f"const __rrA_{nonce}{any_} = Object.freeze(Object.assign(Object.create(null), "
                f"require('node:assert'))); const __rrW_{nonce}{any_} = require('node:fs').writeSync; "
                f"const __rrS_{nonce}{any_} = {{n: 0}};\n")
    ok = ok_message(nonce).replace("\n", "\\n")
    epilogue = f"\nif (__rrS_{nonce}.n === {n}) {{ __rrW_{nonce}(3, '{ok}'); }}\n"
    return prologue + head + "\n" + body + epilogue


class JavaScript(Language):
    name, ext = "js", "js"
    run_timeout_s = 5.0
    run_limits = Limits(as_bytes=8 << 30)
    tools = (NODE,)
    version_cmds = ((NODE, "--version"),)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [NODE, src]

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        return strict_node_program(head, tests, nonce, typed=False)

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        assert run is not None
        return node_status(run)


LANGUAGE = JavaScript()
