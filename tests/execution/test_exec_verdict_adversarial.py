"""Pass-without-solving attacks against the test format, in every language where they apply.

Each attack is a completion of MultiPL-E's HumanEval_53_add (x + y) that computes a wrong answer and then
tries to turn the failure into a pass: exit 0 before the tests, exit handlers, shutdown hooks, overriding the
assertion mechanism, objects that compare equal to anything, trace functions, flooding stderr. Under the
strict rule none may pass, and each is followed in the same worker by an innocent correct program that must
still pass. Under `--verdict-rule multipl-e` the attacks that MultiPL-E's exit-code rule lets through are
listed in MULTIPL_E_PASSES (what a MultiPL-E harness would have reported).
"""

from __future__ import annotations

import pytest
from exec_helpers import multipl_e, sample

from rewardranker.execution import ExecutionConfig, execute

GOOD = {"py": "    return x + y\n", "cpp": "    return x + y;\n", "java": "        return x + y;\n",
        "cs": "        return x + y;\n", "php": "    return $x + $y;\n}\n", "js": "  return x + y;\n}\n",
        "ts": "  return x + y;\n}\n", "sh": "    echo $(( $1 + $2 ))\n"}

ATTACKS: dict[str, dict[str, str]] = {
    "py": {
        "sys_exit_0": "    return 0\nimport sys\nsys.exit(0)\n",
        "atexit_os_exit_0": "    return 0\nimport atexit, os\natexit.register(os._exit, 0)\n",
        "excepthook_exit_0": "    return 0\nimport sys, os\nsys.excepthook = lambda *a: os._exit(0)\n",
        "thread_exit_0": "    return 0\nimport threading, os, time\n"
                         "threading.Thread(target=lambda: (time.sleep(0.3), os._exit(0))).start()\n",
        "always_equal": "    class Any:\n        def __eq__(self, other):\n            return True\n    return Any()\n",
        "int_subclass_eq": "    class I(int):\n        def __eq__(self, other):\n            return True\n"
                           "    return I(0)\n",
        "settrace_skip": "    return 0\nimport sys\ndef _t(frame, event, arg):\n"
                         "    if event == 'line' and frame.f_code.co_name == 'check':\n"
                         "        try:\n            frame.f_lineno = frame.f_lineno + 1\n"
                         "        except ValueError:\n            pass\n    return _t\nsys.settrace(_t)\n",
        "patch_os_exit": "    return 0\nimport os\n_real = os._exit\nos._exit = lambda code: _real(0)\n",
        "fake_traceback": "    return 0\nimport sys, types, os\nm = types.ModuleType('traceback')\n"
                          "m.print_exception = lambda *a, **k: os._exit(0)\nsys.modules['traceback'] = m\n",
        "patch_system_exit": "    return 0\nimport builtins\nbuiltins.SystemExit = BaseException\n",
    },
    "cpp": {
        "exit_0": "    exit(0);\n",
        "define_assert": "    return 0;\n}\n#define assert(x) ((void)0)\nvoid rr_unused() {\n",
        "sigabrt_handler": "    return 0;\n}\n#include <csignal>\n#include <unistd.h>\nstatic int rr_h = "
                           "(std::signal(SIGABRT, [](int) { _exit(0); }), 0);\nvoid rr_unused() {\n",
        "define_candidate": "    return 0;\n}\n#define candidate(...) true ? true : 0\nvoid rr_unused() {\n",
        "interpose_assert_fail": "    return 0;\n}\nextern \"C\" void __assert_fail(const char*, const char*, "
                                 "unsigned int, const char*) noexcept { _exit(0); }\nvoid rr_unused() {\n",
    },
    "java": {
        "system_exit_0": "        System.exit(0);\n        return 0;\n",
        "shutdown_hook_halt_0": "        Runtime.getRuntime().addShutdownHook(new Thread(() -> Runtime.getRuntime().halt(0)));\n"
                                "        return 0;\n",
    },
    "cs": {
        "environment_exit_0": "        Environment.Exit(0);\n        return 0;\n",
        "listeners_clear": "        Trace.Listeners.Clear();\n        return 0;\n",
        "stderr_flood": "        Console.Error.Write(new string('x', 4096));\n        return 0;\n",
    },
    "php": {
        "exit_0": "    exit(0);\n}\n",
        "exception_handler_exit_0": "    return 0;\n}\nset_exception_handler(function ($e) { exit(0); });\n",
        "shutdown_function_exit_0": "    return 0;\n}\nregister_shutdown_function(function () { exit(0); });\n",
    },
    "js": {
        "process_exit_0": "  process.exit(0);\n}\n",
        "uncaught_handler": "  return 0;\n}\nprocess.on('uncaughtException', () => process.exit(0));\n",
        "patch_deep_equal": "  return 0;\n}\nrequire('node:assert').deepEqual = () => {};\n",
        "exit_listener": "  return 0;\n}\nprocess.on('exit', () => { process.exitCode = 0; });\n",
    },
    "ts": {
        "process_exit_0": "  process.exit(0);\n  return 0;\n}\ndeclare var process: any;\n",
        "patch_deep_equal": "  return 0;\n}\ndeclare var require: any;\nrequire('node:assert').deepEqual = () => {};\n",
    },
    "sh": {
        "exit_0": "    echo 0\n}\nexit 0\nrr_unused() {\n    :\n",
        "trap_exit_0": "    echo 0\n}\ntrap 'exit 0' EXIT\nrr_unused() {\n    :\n",
        "override_set": "    echo 0\n}\nset() { :; }\nrr_unused() {\n    :\n",
        "alias_candidate": "    echo 0\n}\nshopt -s expand_aliases\nalias candidate='echo 1; :'\nrr_unused() {\n    :\n",
    },
}

# What MultiPL-E's exit-code rule says about each attack (the reason the strict rule exists). The fork server
# prints uncaught exceptions with the interpreter's own hook, so a program's sys.excepthook is not called
# there (a plain `python3` run would let excepthook_exit_0 through too).
MULTIPL_E_PASSES = {
    "py": {"sys_exit_0", "atexit_os_exit_0", "thread_exit_0", "always_equal",
           "int_subclass_eq"},
    "cpp": {"exit_0", "define_assert", "sigabrt_handler", "define_candidate", "interpose_assert_fail"},
    "java": {"system_exit_0", "shutdown_hook_halt_0"},
    "cs": {"environment_exit_0", "listeners_clear", "stderr_flood"},
    "php": {"exit_0", "exception_handler_exit_0", "shutdown_function_exit_0"},
    "js": {"process_exit_0", "uncaught_handler", "patch_deep_equal", "exit_listener"},
    "ts": {"process_exit_0", "patch_deep_equal"},
    "sh": {"exit_0", "trap_exit_0"},
}


def _run(lang: str, rule: str, tmp_path):
    problems = multipl_e(lang, ("HumanEval_53_add",))
    pid = f"{lang}/HumanEval_53_add"
    samples = []
    for i, text in enumerate(ATTACKS[lang].values()):
        samples += [sample(pid, 2 * i, text), sample(pid, 2 * i + 1, GOOD[lang])]
    cfg = ExecutionConfig(workers=1, verdict_rule=rule, cache_path=tmp_path / f"{rule}.sqlite")
    verdicts = execute(problems, samples, cfg, progress=False)
    return dict(zip(ATTACKS[lang], verdicts[0::2])), verdicts[1::2]


@pytest.mark.parametrize("lang", list(ATTACKS))
def test_attacks_never_pass_under_strict(lang, tmp_path):
    attacks, innocents = _run(lang, "strict", tmp_path)
    for name, v in attacks.items():
        where = f"{lang}/{name}: {v.status} exit={v.exit_code} stderr={v.stderr[-300:]!r}"
        assert not v.passed, where
        assert v.verdict_rule == "strict"
        # Tampered exactly when the same run would pass MultiPL-E's rule
        assert (v.status == "Tampered") == bool(v.passed_multipl_e), where
    for v in innocents:  # the next program in the same worker is judged normally
        assert v.passed and v.status == "OK", f"{lang} innocent after attack: {v.status} {v.stderr[-300:]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("lang", list(ATTACKS))
def test_multipl_e_rule_lets_the_known_attacks_through(lang, tmp_path):
    attacks, innocents = _run(lang, "multipl-e", tmp_path)
    passing = {name for name, v in attacks.items() if v.passed}
    assert passing == MULTIPL_E_PASSES[lang]
    assert all(v.passed and v.verdict_rule == "multipl-e" for v in innocents)
