"""PHP: MultiPL-E runs `php FILE.php` (15 s).

Status: SyntaxError if "PHP Parse error" in stdout -> Exception if exit != 0 -> OK. MultiPL-E has no Timeout
status for PHP: a timeout (exit -1) is an Exception, and so it is here.
Deviation forced by Debian: its CLI php.ini sets display_errors=Off and log_errors=On, so a parse error prints
"PHP Parse error: ..." on **stderr** (exit 255) and MultiPL-E's stdout check would never fire. We look for the
message in stdout *or* stderr, which gives the SyntaxError that MultiPL-E's own image (Ubuntu's php.ini) gives.
"""

from __future__ import annotations

from rewardranker.execution.langs.base import Language
from rewardranker.execution.sandbox import StepResult

PHP = "/usr/bin/php"


class Php(Language):
    name, ext = "php", "php"
    tools = (PHP,)
    version_cmds = ((PHP, "--version"),)

    def run_argv(self, src: str, fast: bool) -> list[str]:
        return [PHP, src]

    def classify(self, comp: StepResult | None, run: StepResult | None) -> tuple[str, int | None]:
        assert run is not None
        if "PHP Parse error" in run.stdout_full.decode("utf-8", "replace") or "PHP Parse error" in run.stderr:
            return "SyntaxError", run.exit_code
        if run.exit_code != 0:
            return "Exception", run.exit_code
        return "OK", 0


LANGUAGE = Php()
