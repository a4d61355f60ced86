"""Execute candidate programs against their tests, sandboxed, in parallel, with a verdict cache.

    from rewardranker.execution import ExecutionConfig, execute
    verdicts = execute(problems, samples, ExecutionConfig(workers=2))

Threat model. The programs are adversaries: they come from a policy optimised to get good verdicts, so they
may try to reach the host, to forge their own verdict, or to change other programs' verdicts.

Guaranteed (executor running as root with bubblewrap, the supported set-up; each point has a test in
tests/execution/test_exec_isolation*.py or test_exec_adversarial.py):
- The host never trusts a path inside the scratch area. Programs cannot write the scratch root (root-owned),
  so they cannot rename, replace or pre-create job directories; each program gets a fresh directory made by
  the host; the host removes job trees relative to directory descriptors without following links, and reads
  a program's output only through the supervisor's pipe (memory files), never from a file in the scratch
  area, so a symlink or FIFO planted there is never opened or waited on.
- Nothing of the host's environment enters the sandbox: bwrap (the sandbox's pid 1) starts with PATH only, and
  programs get a fixed per-language environment. Tokens and keys exported in the executor's shell are not
  readable by any program, through its environment or /proc/1/environ.
- A seccomp filter (libseccomp, via Debian's python3-seccomp; the list is in `syscall_filter.py`) denies every
  sandboxed process ptrace, process_vm_readv/writev, new namespaces (unshare, setns, clone with CLONE_NEW*),
  mount, keyctl, bpf, perf_event_open, userfaultfd, io_uring, kernel module and kexec loading, and the like.
  The supervisor is not dumpable (no ptrace, /proc/PID/mem or /proc/PID/fd by the uid it shares with the
  programs), and each program gets a stacked filter that denies kill/tgkill/pidfd_open/prlimit/sched_* on the
  supervisor and pid 1 and kill(-1): a program can neither trace, write, stop nor kill what reports its
  verdict.
- Every program starts from the same state: a fresh job directory; /tmp, /dev (with /dev/shm) and SysV IPC
  restored to their state at the sandbox's start; no process left from earlier programs; compile servers
  (javac, tsc, mcs) work in a read-only directory and see job directories only through the host-made,
  root-owned scratch root, so leftovers such as node_modules/@types, package.json, headers or class files
  reach no later program.
- Infrastructure failures are their own status, InfraError (a dead sandbox or supervisor, a crashed compile
  server, a broken supervisor answer): retried once on a fresh sandbox, never cached, left out of pass@k
  (with a warning) and of training data. A Timeout observed while the machine was overloaded (load above the
  core count, or the program got less than half a CPU) is run once more before it is cached.
- Rlimits, timeouts, network isolation, a read-only root and the kill of every leftover process, as
  described in `sandbox.py`; what a killed or concurrent executor leaves behind (uid blocks, toolbox staging
  folders, job directories) never breaks a later run.

Not guaranteed:
- Kernel exploits: namespaces, seccomp and rlimits are only as strong as the kernel.
- Reading world-readable host files: the root file system is visible read-only (a secret in a world-readable
  file is readable).
- Total memory, CPU and disk: no cgroup limits; RLIMIT_AS is per process (worst case nproc x address space);
  the scratch dir has no quota (files of up to 16 MiB each until the timeout, deleted afterwards).
- Side channels and timing between programs of one worker (they share a uid, one after another).
- A program that makes its sandbox fail in a way the filters do not foresee gets InfraError, which is left
  out of training: that is a missing label, not a pass.
- Without root, there is no uid separation and programs can write the scratch root; without bwrap
  (`--unsafe-no-sandbox`) there is no isolation at all.

Verdict rules (`ExecutionConfig.verdict_rule`, CLI `--verdict-rule`; the cache key holds the rule and
`langs.base.HARNESS_VERSION`):
- `multipl-e`: MultiPL-E's per-language rule on the unmodified program (status OK and exit 0; C# by mono's
  stderr markers). For benchmark fidelity only: exit 0 before the tests, an exit handler or an overridden
  assertion passes under it.
- `strict` (the default, and what every training path uses: build-rm-data/mutants, PPO's execution reward,
  selftrain's labels, hard negatives and pass rates; selftrain's config refuses another rule): the harness
  weaves code into the *tests* (which the problem owns): its own assertion mechanism right after the
  program's code (C++ `#undef`s + its own `assert`; Java/C# assertion statements call a harness class; JS/TS
  use node's `assert` taken before the program ran; Python asserts become harness calls over plain builtin
  values; bash checks get explicit failure handling), a count of the assertions that ran, and an epilogue
  after the tests that writes `RR:<nonce>:OK` (a fresh random nonce per run) to fd 3, a pipe that only the
  supervisor reads. `passed` = MultiPL-E's rule AND that message. A run MultiPL-E's rule would pass without
  it is `Tampered`, as is a detected override (Python trace function or program-defined object in an
  assertion; bash aliases or extdebug). The verdict carries `passed_multipl_e` (what MultiPL-E's rule says:
  passed or Tampered; an override the harness neutralised instead of detecting, such as a C++
  `#define assert`, fails both) and `verdict_rule` (tests whose shape a backend does not know run under `multipl-e`, and say so).
  Guaranteed under strict: early exit 0 (every language), exit handlers, shutdown hooks, uncaught-exception
  handlers, patched or macro-replaced assertion functions, an interposed `__assert_fail`, SIGABRT handlers,
  removed C# trace listeners, stderr floods, Python tracers that skip assertions and objects that compare
  equal to anything never pass (tests/execution/test_exec_verdict_adversarial.py, every language).
  The Python fork server binds its exit path before the program runs, so patching `os._exit`,
  `builtins.SystemExit`, `sys.modules['traceback']` or the `atexit` module cannot change the exit status
  under either rule (a program's own `sys.excepthook` is not called, unlike in a plain `python3`).
  Not guaranteed (what stays forgeable):
  - A program written against this harness: the nonce is in its own source file (and binary/class file)
    and fd 3 is open in its process, so it can write the OK message itself and exit 0. Evidence produced
    inside the program's own process cannot be made unforgeable; strict removes the generic ways to pass
    without solving (exit codes, handlers, overrides), not a targeted forgery.
  - Helpers the tests call that live in the prompt (HumanEval/32's `poly`, /38 and /50's `encode_*`): the
    completion can redefine them.
  - Python: module attributes the tests use (`math.fabs`) are not snapshotted; assertions inside loops or
    branches are not required to run (a tracer there is still reported); C-implemented objects
    (generators, Decimal) reach comparisons unchanged, while a Fraction (Python-level `__eq__`) is Tampered
    even when honest; a `Counter` is compared as a plain dict.
  - C++: only identifiers used by the tests and the harness are `#undef`ed (standard macros such as NULL and
    INT_MAX are kept); bash: program functions named like builtins (printf) are called by the epilogue, which
    can only withhold the evidence.

Modules: `runner` (execute, ExecutionConfig), `sandbox` (bubblewrap, rlimits, job directories), `supervisor`
(the in-sandbox process runner), `syscall_filter` (the seccomp filters), `cache` (SQLite verdict cache),
`servers` (persistent compilers), `langs/<lang>.py` (commands and MultiPL-E status rules per language).
"""

from rewardranker.execution.cache import VerdictCache, default_cache_path
from rewardranker.execution.runner import ExecutionConfig, execute, program_text

__all__ = ["ExecutionConfig", "VerdictCache", "default_cache_path", "execute", "program_text"]
