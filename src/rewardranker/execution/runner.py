"""The executor: assemble programs, look them up in the verdict cache, run the rest in parallel sandboxes.

A program is `(sample.prompt if not None else problem.prompt) + sample.completion + "\\n" + problem.tests`
(MultiPL-E's main.py). Identical programs (same text, language, timeout, toolchain) run once. `passed` is
MultiPL-E's rule: status OK and exit code 0.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.execution import langs
from rewardranker.execution.cache import VerdictCache, cache_key, default_cache_path
from rewardranker.execution.langs.base import Job, Language
from rewardranker.execution.sandbox import (
    SUPERVISOR,
    Sandbox,
    StepResult,
    check_available,
    default_toolbox,
    kill_uid,
    prepare_toolbox,
    publish,
    run_once,
    wipe,
)
from rewardranker.problems import ProblemSet, find_problem, index_problems
from rewardranker.records import Problem, Sample, Verdict
from rewardranker.runio import content_hash

MAX_WORKERS = 32  # each worker gets its own uid from a per-process block of 2 x MAX_WORKERS


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

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError("workers", f"= {self.workers!r}: must be an integer from 1 to {MAX_WORKERS}")
        if self.timeout_s is not None and not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise ConfigError("timeout_s", f"= {self.timeout_s!r}: must be a positive number of seconds or None")
        if self.cache_path is not None:
            self.cache_path = Path(self.cache_path)
        self.toolbox = Path(self.toolbox) if self.toolbox else default_toolbox()


@dataclass
class _Item:
    """One distinct program to run."""

    key: str
    language: str
    program: str
    program_hash: str
    timeout_s: float


class Slot:
    """One worker's sandbox (and its compiler servers): programs run one at a time in it."""

    def __init__(self, index: int, root: Path, cfg: ExecutionConfig, binds: dict[Path, str], uid: int,
                 lib: Path):
        self.index, self.cfg = index, cfg
        self.uid = uid
        self.root = root / f"slot{index}"
        self.sandbox = Sandbox(self.uid, self.root / "w", cfg.sandbox, binds, lib)
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

    def new_job(self, lang: Language, program: str, timeout_s: float) -> Job:
        self.counter += 1
        workdir = self.sandbox.scratch / f"j{self.counter}"
        workdir.mkdir()
        if os.geteuid() == 0:
            os.chown(workdir, self.uid, self.uid)
        src = lang.source_file(workdir)
        src.write_text(program, encoding="utf-8")
        return Job(workdir, src, timeout_s)

    def step(self, fast: bool):
        if fast:
            return self.sandbox.run
        return lambda argv, cwd, timeout_s, limits, env=None, python=False: run_once(
            self.sandbox, argv, cwd, timeout_s, limits, env)

    def close(self) -> None:
        for server in self.servers.values():
            if server is not None:
                server.close()
        self.sandbox.close()
        if self.cfg.sandbox and os.geteuid() == 0:
            kill_uid(self.uid)


def run_item(slot: Slot, item: _Item, fast: bool) -> dict:
    """Execute one program in `slot`; return the verdict fields that the cache stores."""
    lang = langs.get(item.language)
    job = slot.new_job(lang, item.program, item.timeout_s)
    start = time.monotonic()
    try:
        comp, run = lang.execute(slot, job, fast, slot.step(fast))
    finally:
        wipe(job.workdir)
        shutil.rmtree(job.workdir, ignore_errors=True)
    status, exit_code = lang.classify(comp, run)
    last: StepResult = run if run is not None else comp  # type: ignore[assignment]
    return {"status": status, "passed": status == "OK" and exit_code == 0, "exit_code": exit_code,
            "duration_s": round(time.monotonic() - start, 4), "stderr": last.stderr, "stdout": last.stdout}


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
        key = cache_key(h, problem.language, timeout, lang.version + ("|fast" if cfg.fast else "|plain"), cfg.sandbox)
        items.append(_Item(key, problem.language, program, h, timeout))
    return items


def execute(problems: ProblemSet | Iterable[Problem], samples: list[Sample],
            cfg: ExecutionConfig | None = None, progress: bool = True) -> list[Verdict]:
    """Run every sample's program against its problem's tests; verdicts come back in `samples` order."""
    cfg = cfg or ExecutionConfig()
    problems = index_problems(problems)  # keyed by (language, problem_id)
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
                    program_hash=it.program_hash, cached=it.key in cached, **results[it.key])
            for s, it in zip(samples, items)]


def _run_all(todo: list[_Item], used: list[str], cfg: ExecutionConfig, results: dict, cache, progress: bool,
             done_before: int) -> None:
    prepare_toolbox(cfg.toolbox)
    lib = publish(cfg.toolbox, SUPERVISOR, "supervisor")
    binds: dict[Path, str] = {}
    for language in used:
        binds.update(langs.get(language).prepare(cfg.toolbox) if cfg.fast or language == "ts" else {})
    root = Path(tempfile.mkdtemp(prefix="rewardranker-exec-"))
    os.chmod(root, 0o755)
    n = min(cfg.workers, len(todo))
    uids = _take_uids(n)
    slots: queue.SimpleQueue[Slot] = queue.SimpleQueue()
    all_slots = [Slot(i, root, cfg, binds, uid, lib) for i, uid in enumerate(uids)]
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
        _give_back_uids(uids)
        shutil.rmtree(root, ignore_errors=True)


def _drain(pool: ThreadPoolExecutor, futures: list, results: dict, cache, bar: "_progress") -> None:
    """Collect finished programs as they come, caching each (committed at least every half second)."""
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
        for fut in finished:
            item, fields = fut.result()
            results[item.key] = fields
            if cache is not None:
                cache.put(item.key, fields)
            bar.advance()
        if cache is not None and not finished:
            cache.flush()


def uid_block(pid: int | None = None) -> range:
    """The sandbox uids a process uses (programs and compile servers), distinct for each live process."""
    start = 200_000 + ((os.getpid() if pid is None else pid) % 100_000) * 2 * MAX_WORKERS
    return range(start, start + 2 * MAX_WORKERS)


_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()


def _take_uids(n: int) -> list[int]:
    """Reserve `n` of this process's sandbox uids, so concurrent execute() calls never share a worker uid."""
    with _uid_lock:
        free = [u for u in uid_block() if u not in _uids_in_use][:n]
        if len(free) < n:
            raise RewardRankerError(f"too many concurrent execute() calls in this process: {n} workers wanted, "
                                    f"{len(free)} sandbox uids free")
        _uids_in_use.update(free)
        return free


def _give_back_uids(uids: list[int]) -> None:
    with _uid_lock:
        _uids_in_use.difference_update(uids)


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
