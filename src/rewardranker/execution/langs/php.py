"""PHP: MultiPL-E runs `php FILE.php` (15 s).

Status: SyntaxError if "PHP Parse error" in stdout -> Exception if exit != 0 -> OK. MultiPL-E has no Timeout
status for PHP: a timeout (exit -1) is an Exception, and so it is here.
Deviation forced by Debian: its CLI php.ini sets display_errors=Off and log_errors=On, so a parse error prints
"PHP Parse error: ..." on **stderr** (exit 255) and MultiPL-E's stdout check would never fire. We look for the
message in stdout *or* stderr, which gives the SyntaxError that MultiPL-E's own image (Ubuntu's php.ini) gives.
Strict rule: each `if (...) { throw new Exception("Test failed!"); }` line of the tests also counts itself in a
harness class (`RrH<nonce>`); after the tests an epilogue writes the OK message to `php://fd/3` only if every
check ran and none failed, so `exit`, an exception handler or a shutdown function that ends the run early
with status 0 is not a pass. PHP has no operator overloading, so `!==` cannot be faked.
"""

from __future__ import annotations

import re

from rewardranker.execution.langs.base import Language, ok_message
from rewardranker.execution.sandbox import StepResult

PHP = "/usr/bin/php"


class Php(Language):
    name, ext = "php", "php"
    tools = (PHP,)
    version_cmds = ((PHP, "--version"),)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [PHP, src]

    def strict_program(self, head: str, tests: str, nonce: str) -> str | None:
        body, n = _CHECK.subn(rf"\1if (\2) {{ RrH{nonce}::$failed = true; \3 }} RrH{nonce}::$n++;", tests)
        if not n:
            return None
        ok = ok_message(nonce).replace("\n", "\\n")
        return (head + "\n" + f"final class RrH{nonce} {{ public static $n = 0; public static $failed = false; }}\n"
                + body + f"\nif (!RrH{nonce}::$failed && RrH{nonce}::$n === {n}) "
                f"{{ \\file_put_contents('php://fd/3', \"{ok}\"); }}\n")

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        assert run is not None
        if "PHP Parse error" in run.stdout_full.decode("utf-8", "replace") or "PHP Parse error" in run.stderr:
            return "SyntaxError", run.exit_code
        if run.exit_code != 0:
            return "Exception", run.exit_code
        return "OK", 0


_CHECK = re.compile(r"^([ \t]*)if \((.*)\) \{ (throw new Exception\(.*\);) \}[ \t]*$", re.MULTILINE)

LANGUAGE = Php()
