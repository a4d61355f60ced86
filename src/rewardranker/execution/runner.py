"""The executor: assemble programs, look them up in the verdict cache, run the rest in parallel sandboxes.

A program is `(sample.prompt if not None else problem.prompt) + sample.completion + "\\n" + problem.tests`
(MultiPL-E's main.py). Identical programs (same text, language, timeout, toolchain, verdict rule) run once.
`passed` follows `ExecutionConfig.verdict_rule`: `strict` (the default; langs/base.py says what it adds) or
`multipl-e` (status OK and exit code 0, MultiPL-E's rule, for benchmark fidelity).
Each program gets a fresh job directory made by the host; a program whose sandbox or compile server failed is
run once more on a fresh sandbox, and is reported as InfraError (never cached) if that fails too; a Timeout seen
while the machine was overloaded (load above the core count, or the program got less than half a CPU) is run
once more before it is cached.
"""

from __future__ import annotations

import fcntl
import functools
import os
import queue
import secrets
import stat
import tempfile
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rewardranker.errors import ConfigError, RewardRankerError, SandboxError
from rewardranker.execution import langs
from rewardranker.execution.cache import VerdictCache, cache_key, default_cache_path
from rewardranker.execution.langs.base import HARNESS_VERSION, VERDICT_RULES, Job, Language
from rewardranker.execution.sandbox import (
    SUPERVISOR,
    InfraError,
    Sandbox,
    StepResult,
    check_available,
    default_toolbox,
    kill_uid,
    make_job_dir,
    open_dir,
    prepare_toolbox,
    publish,
    remove_tree,
    run_once,
    write_new_file,
)
from rewardranker.problems import ProblemSet, find_problem, index_problems
from rewardranker.records import Problem, Sample, Verdict
from rewardranker.runio import content_hash

MAX_WORKERS = 32  # each worker gets its own uid from a block of 2 x MAX_WORKERS held by one execute() call
UID_BASE, UID_BLOCKS = 200_000, 4096
UID_LOCKS = Path("/run/lock/rewardranker-uids")  # one lock file per uid block, held (flock) while in use
INFRA_ERROR = "InfraError"


@dataclass
class ExecutionConfig:
    """How to execute: parallelism, timeout, sandboxing and the verdict cache."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout_s: float | None = None  # None: the language's MultiPL-E default (15 s; 5 s for js and cs runs)
    sandbox: bool = True
    cache_path: Path | None = None  # None: $REWARDRANKER_CACHE or ~/.cache/rewardranker/verdicts.sqlite
    allow_unsandboxed: bool = False
    fast: bool = True  # amortised toolchains (PCH, compiler servers, fork server); False = MultiPL-E's commands
    use_cache: bool = True
    toolbox: Path | None = None  # built toolchain artefacts (PCH, servers); None: sandbox.default_toolbox()
    verdict_rule: str = "strict"  # "strict" (training, default) or "multipl-e" (benchmark fidelity)
    # hardening steps, switchable only so that benchmarks/execution.py can measure what each one costs:
    seccomp: bool = True  # seccomp filters on every sandbox and program
    clean_state: bool = True  # restore /tmp, /dev (/dev/shm) and SysV IPC after every program
    ray: str | None = None  # run on a Ray cluster: "auto", "HOST:PORT", "ray://HOST:PORT" or "local" (ray_backend)
    ray_actors: int | None = None  # executor actors on the cluster; None: one per free cluster CPU

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError("workers", f"= {self.workers!r}: must be an integer from 1 to {MAX_WORKERS}")
        if self.timeout_s is not None and not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise ConfigError("timeout_s", f"= {self.timeout_s!r}: must be a positive number of seconds or None")
        if self.verdict_rule not in VERDICT_RULES:
            raise ConfigError("verdict_rule", f"= {self.verdict_rule!r}: must be one of {', '.join(VERDICT_RULES)}")
        if self.cache_path is not None:
            self.cache_path = Path(self.cache_path)
        self.toolbox = Path(self.toolbox) if self.toolbox else default_toolbox()
        if self.ray is not None and not (isinstance(self.ray, str) and self.ray.strip()):
            raise ConfigError("ray", f"= {self.ray!r}: must be 'auto', 'local', HOST:PORT or ray://HOST:PORT")
        if self.ray_actors is not None and not (isinstance(self.ray_actors, int) and self.ray_actors >= 1):
            raise ConfigError("ray_actors", f"= {self.ray_actors!r}: must be a positive integer or None")


@dataclass
class _Item:
    """One distinct program to run."""

    key: str
    language: str
    program: str
    program_hash: str
    timeout_s: float
    head: str = ""  # prompt + completion (the strict rule instruments what follows it)
    tests: str = ""
    rule: str = "multipl-e"  # the rule this program is judged by (strict needs tests it can instrument)


class Slot:
    """One worker's sandbox (and its compiler servers): programs run one at a time in it."""

    def __init__(self, index: int, root: Path, cfg: ExecutionConfig, binds: dict[Path, str], uid: int,
                 lib: Path):
        self.index, self.cfg = index, cfg
        self.uid = uid
        self.root = root / f"slot{index}"
        self.sandbox = Sandbox(self.uid, self.root / "w", cfg.sandbox, binds, lib, cfg.seccomp, cfg.clean_state)
        self.scratch_fd = open_dir(self.sandbox.scratch)
        self.lib = lib
        self.binds = binds
        self.servers: dict[str, object] = {}
        self.counter = 0

    def inside(self, host: Path) -> str:
        return self.sandbox.inside(host)

    def server(self, language: str):
        """The persistent compiler for `language` in this slot (started on first use), or None."""
        if language not in self.servers:
            from rewardranker.execution import servers

            self.servers[language] = servers.start(language, self)
        return self.servers[language]

    def new_job(self, lang: Language, program: str, timeout_s: float, nonce: str | None = None) -> Job:
        """A fresh directory made by the host (owned by the worker's uid) holding the program's source."""
        self.counter += 1
        owner = self.uid if os.geteuid() == 0 else None
        name = make_job_dir(self.scratch_fd, f"j{self.counter}", owner)
        workdir = self.sandbox.scratch / name
        src = lang.source_file(workdir)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.scratch_fd)
        try:
            write_new_file(fd, src.name, program.encode("utf-8"), owner)
        finally:
            os.close(fd)
        return Job(workdir, src, timeout_s, nonce)

    def remove_job(self, job: Job) -> None:
        """Delete the job's tree; if a dying sandbox's last processes still change it, what is left goes with
        the run's root at the end (by then every process of the uid is dead)."""
        try:
            remove_tree(self.scratch_fd, job.workdir.name)
        except (OSError, SandboxError):
            pass

    def step(self, fast: bool):
        if fast:
            return self.sandbox.run
        return lambda argv, cwd, timeout_s, limits, env=None, python=False, channel=False: run_once(
            self.sandbox, argv, cwd, timeout_s, limits, env, channel)

    def stop(self) -> None:
        """Stop the sandbox and the compile servers, and anything still running as the worker's uid."""
        for server in self.servers.values():
            if server is not None:
                server.close()
        self.sandbox.close()
        if self.cfg.sandbox and os.geteuid() == 0:
            kill_uid(self.uid)

    def restart(self) -> None:
        """A fresh sandbox and fresh compile servers for the next program (started on first use)."""
        self.stop()
        self.servers.clear()

    def close(self) -> None:
        self.stop()
        os.close(self.scratch_fd)


def run_item(slot: Slot, item: _Item, fast: bool) -> dict:
    """Execute one program in `slot`; return the verdict fields that the cache stores.

    A sandbox or compile-server failure gets one more try on a fresh sandbox, then status InfraError; a
    Timeout while the machine looked overloaded gets one more try, whose result stands.
    """
    error = ""
    for attempt in range(2):
        try:
            fields, suspect_timeout = _run_item_once(slot, item, fast)
        except InfraError as e:
            error = str(e)
            slot.restart()
            continue
        if suspect_timeout and attempt == 0:
            continue
        return fields
    return {"status": INFRA_ERROR, "passed": False, "exit_code": None, "duration_s": 0.0,
            "stderr": error[:2048], "stdout": ""}


def _run_item_once(slot: Slot, item: _Item, fast: bool) -> tuple[dict, bool]:
    lang = langs.get(item.language)
    nonce = secrets.token_hex(8) if item.rule == "strict" else None  # fresh per run, never in the cache key
    program = item.program if nonce is None else lang.strict_program(item.head, item.tests, nonce)
    if program is None:  # cannot happen for tests `_instrumentable` accepted; judged by MultiPL-E's rule then
        program, nonce = item.program, None
    job = slot.new_job(lang, program, item.timeout_s, nonce)
    start = time.monotonic()
    try:
        comp, run = lang.execute(slot, job, fast, slot.step(fast))
    finally:
        slot.remove_job(job)
    verdict = lang.verdict(comp, run, nonce)
    last: StepResult = run if run is not None else comp  # type: ignore[assignment]
    fields = {"status": verdict["status"], "passed": verdict["passed"], "exit_code": verdict["exit_code"],
              "duration_s": round(time.monotonic() - start, 4), "stderr": last.stderr, "stdout": last.stdout}
    return fields, any(step is not None and step.timed_out and overloaded(step) for step in (comp, run))


def overloaded(step: StepResult) -> bool:
    """Whether a timed-out step may owe its timeout to the machine: more runnable work than cores, or the
    program got under half a CPU of the wall time it was given."""
    starved = step.cpu_s is not None and step.cpu_s < 0.5 * step.duration_s
    return starved or os.getloadavg()[0] > (os.cpu_count() or 1)


def program_text(problem: Problem, sample: Sample) -> str:
    prompt = sample.prompt if sample.prompt is not None else problem.prompt
    return prompt + sample.completion + "\n" + problem.tests


def _items(problems: ProblemSet, samples: list[Sample], cfg: ExecutionConfig) -> list[_Item]:
    items = []
    for s in samples:
        problem = find_problem(problems, s)
        lang = langs.get(problem.language)
        program = program_text(problem, s)
        timeout = float(cfg.timeout_s) if cfg.timeout_s is not None else lang.run_timeout_s
        h = content_hash(program)
        rule = "strict" if cfg.verdict_rule == "strict" and _instrumentable(lang, problem.tests) else "multipl-e"
        toolchain = lang.version + ("|fast" if cfg.fast else "|plain") + f"|{rule}|{HARNESS_VERSION}"
        key = cache_key(h, problem.language, timeout, toolchain, cfg.sandbox)
        head = program[:len(program) - len(problem.tests) - 1]
        items.append(_Item(key, problem.language, program, h, timeout, head, problem.tests, rule))
    return items


def _instrumentable(lang: Language, tests: str) -> bool:
    """Whether the strict harness can be woven into these tests (a property of the tests alone)."""
    return _instrumentable_by_name(lang.name, tests)


@functools.lru_cache(maxsize=4096)
def _instrumentable_by_name(language: str, tests: str) -> bool:
    return langs.get(language).strict_program("", tests, "0" * 16) is not None


def execute(problems: ProblemSet | Iterable[Problem], samples: list[Sample],
            cfg: ExecutionConfig | None = None, progress: bool = True) -> list[Verdict]:
    """Run every sample's program against its problem's tests; verdicts come back in `samples` order."""
    cfg = cfg or ExecutionConfig()
    problems = index_problems(problems)  # keyed by (language, problem_id)
    if cfg.ray:
        from rewardranker.execution.ray_backend import execute_ray

        return execute_ray(problems, samples, cfg, progress)
    check_available(cfg.sandbox, cfg.allow_unsandboxed)
    used = sorted({find_problem(problems, s).language for s in samples})
    for language in used:
        langs.get(language).check()
    items = _items(problems, samples, cfg)
    cache = VerdictCache(cfg.cache_path or default_cache_path()) if cfg.use_cache else None
    try:
        results = cache.get_many([it.key for it in items]) if cache is not None else {}
        cached = set(results)
        todo = list({it.key: it for it in items if it.key not in results}.values())
        if todo:
            _run_all(todo, used, cfg, results, cache, progress, len(items) - len(todo))
    finally:
        if cache is not None:
            cache.close()
    return [Verdict(problem_id=s.problem_id, sample_id=s.sample_id, language=it.language,
                    program_hash=it.program_hash, cached=it.key in cached, verdict_rule=it.rule,
                    passed_multipl_e=results[it.key]["passed"] or results[it.key]["status"] == "Tampered",
                    **results[it.key])
            for s, it in zip(samples, items)]


def _run_all(todo: list[_Item], used: list[str], cfg: ExecutionConfig, results: dict, cache, progress: bool,
             done_before: int) -> None:
    with _uid_block() as uids:
        _run_in_slots(todo, used, cfg, results, cache, progress, done_before, uids)
    infra = sum(1 for it in todo if results[it.key]["status"] == INFRA_ERROR)
    if infra:
        warnings.warn(f"{infra} of {len(todo)} programs hit an infrastructure failure (status InfraError: the "
                      "sandbox or a compile server failed twice); they are not cached, and are left out of "
                      "pass@k and of training data", stacklevel=3)


def _run_in_slots(todo: list[_Item], used: list[str], cfg: ExecutionConfig, results: dict, cache,
                  progress: bool, done_before: int, uids: range) -> None:
    prepare_toolbox(cfg.toolbox)
    lib = publish(cfg.toolbox, SUPERVISOR, "supervisor")
    binds: dict[Path, str] = {}
    for language in used:
        binds.update(langs.get(language).prepare(cfg.toolbox) if cfg.fast or language == "ts" else {})
    root = Path(tempfile.mkdtemp(prefix="rewardranker-exec-"))
    os.chmod(root, 0o755)
    n = min(cfg.workers, len(todo))
    slots: queue.SimpleQueue[Slot] = queue.SimpleQueue()
    all_slots = [Slot(i, root, cfg, binds, uid, lib) for i, uid in enumerate(uids[:n])]
    for s in all_slots:
        slots.put(s)

    def work(item: _Item) -> tuple[_Item, dict]:
        slot = slots.get()
        try:
            return item, run_item(slot, item, cfg.fast)
        finally:
            slots.put(slot)

    bar = _progress(progress, len(todo) + done_before, done_before)
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="rr-exec")
    try:
        _drain(pool, [pool.submit(work, it) for it in _interleave(todo)], results, cache, bar)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, queued programs are dropped
        bar.close()
        for s in all_slots:
            s.close()
        parent = open_dir(root.parent)
        try:
            remove_tree(parent, root.name)
        finally:
            os.close(parent)


def _drain(pool: ThreadPoolExecutor, futures: list, results: dict, cache, bar: "_progress") -> None:
    """Collect finished programs as they come, caching each (committed at least every half second)."""
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
        for fut in finished:
            item, fields = fut.result()
            results[item.key] = fields
            if cache is not None and fields["status"] != INFRA_ERROR:
                cache.put(item.key, fields)
            bar.advance()
        if cache is not None and not finished:
            cache.flush()


def uid_block(pid: int | None = None) -> range:
    """The uid block an execute() call in process `pid` (default: this one) takes when it is free."""
    return _block_range(((os.getpid() if pid is None else pid)) % UID_BLOCKS)


def _block_range(index: int) -> range:
    start = UID_BASE + index * 2 * MAX_WORKERS
    return range(start, start + 2 * MAX_WORKERS)


class _uid_block:
    """Hold a block of sandbox uids for one execute() call: an exclusive flock on the block's lock file, so
    concurrent executors (in this process or any other) never share a uid, whatever their pids. The search
    starts at the pid's own block; a lock dies with its holder, so a killed executor frees its block."""

    def __enter__(self) -> range:
        if os.geteuid() != 0:  # not root: programs run as the current user, no uids are used
            return uid_block()
        UID_LOCKS.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(UID_LOCKS)
        if st.st_uid != 0 or not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022:
            raise RewardRankerError(f"{UID_LOCKS} must be a directory owned and writable only by root")
        first = os.getpid() % UID_BLOCKS
        for step in range(UID_BLOCKS):
            index = (first + step) % UID_BLOCKS
            fd = os.open(UID_LOCKS / f"block-{index}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.fd, uids = fd, _block_range(index)
            kill_uid(set(uids), wait_s=1.0)  # whatever a killed earlier holder left running
            return uids
        raise RewardRankerError(f"all {UID_BLOCKS} sandbox uid blocks are in use ({UID_LOCKS})")

    def __exit__(self, *exc) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)


def _interleave(items: list[_Item]) -> list[_Item]:
    """Group work by language, so each worker's compiler servers stay warm while their language runs."""
    return sorted(items, key=lambda it: it.language)


class _progress:
    """A rich progress bar (or nothing), advanced from the main thread."""

    def __init__(self, enabled: bool, total: int, completed: int):
        self.p = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.p = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
                              console=Console(stderr=True))
            self.p.start()
            self.task = self.p.add_task("executing", total=total, completed=completed)

    def advance(self) -> None:
        if self.p:
            self.p.advance(self.task)

    def close(self) -> None:
        if self.p:
            self.p.stop()
