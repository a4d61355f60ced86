"""Execution on a Ray cluster: executor actors that keep their sandbox and compile servers warm across runs.

    cfg = ExecutionConfig(ray="auto")          # or "HOST:6379", "ray://HOST:10001", "local"
    verdicts = execute(problems, samples, cfg)  # same verdicts, same order, as the local backend

Each executor actor takes one CPU and owns one long-lived `runner.Slot` (a bubblewrap sandbox plus the compile
servers of the languages it has run) and its node's verdict cache. The driver assembles programs exactly as the
local backend does, answers what its own cache holds, and streams the rest to the actors in batches of one
language (an actor is handed its last language again when any is left, so its compile server stays warm). Each
verdict streams back as soon as it exists, is written to the driver's cache, and lands in `samples` order.

Faults: when an actor dies (its node went away, it was killed, or a program took it down) the programs it had
not yet returned go back to the queue and a replacement actor is started. Only the program that was running
is charged a try; one that has taken down `MAX_TRIES` actors gets status "InfraError" (never cached), so a
program that kills executors cannot loop forever. Ctrl-C stops the actors after their current program, closes
their sandboxes and re-raises; verdicts already returned are in the cache.

Ray does the scheduling, transport and failure detection; this module only decides what runs where and how
often a program may be retried, which Ray's own task retries cannot express per program.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rewardranker.errors import RewardRankerError
from rewardranker.execution import langs
from rewardranker.execution.cache import VerdictCache, default_cache_path
from rewardranker.execution.runner import (
    INFRA_ERROR,
    ExecutionConfig,
    Slot,
    _Item,
    _items,
    _progress,
    _uid_block,
    run_item,
)
from rewardranker.execution.sandbox import (
    SUPERVISOR,
    check_available,
    default_toolbox,
    open_dir,
    prepare_toolbox,
    publish,
    remove_tree,
)
from rewardranker.problems import ProblemSet, find_problem, index_problems
from rewardranker.records import Problem, Sample, Verdict

MAX_TRIES = 3  # a program whose executor died this many times while running it gets status INFRA_ERROR
INSTALL_HINT = "pip install 'rewardranker[ray]'"
BATCH_MAX = 16  # programs per dispatched batch at most (smaller near the end, for load balance)
NO_ACTOR_TIMEOUT_S = 300.0  # give up when no executor actor has been alive for this long


def import_ray():
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RewardRankerError(f"--ray / ray: needs Ray, which is not installed; install it with: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> None:
    """Join the cluster at `address` ('auto', 'HOST:PORT', 'ray://HOST:PORT') or start a one-node 'local' one."""
    ray = import_ray()
    if ray.is_initialized():
        return
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RewardRankerError(f"cannot join the Ray cluster at {address!r}: {first} (start one with "
                                f"`ray start --head`, or pass --ray local for a one-machine cluster)") from None


_OWNERS: list = []  # objects in this process holding actors (executor pools, scorer pools), with .shutdown()


def claim_cluster(owner) -> int:
    """Shut down the actors of every other owner in this process; return the cluster's free CPUs after that.

    Stages take turns (execute, then score, then execute...), each using the whole cluster.
    """
    import ray

    for other in [o for o in _OWNERS if o is not owner]:  # a copy: shutdown() removes it from _OWNERS
        other.shutdown()
    if owner not in _OWNERS:
        _OWNERS.append(owner)
    return int(ray.available_resources().get("CPU", 0))


def kill_and_wait(ray, handles: list, cpus: float, timeout_s: float = 15.0) -> None:
    """Kill actors and wait (briefly) until the cluster shows their CPUs free again, so the next pool gets them."""
    target = ray.available_resources().get("CPU", 0) + cpus
    for h in handles:
        with contextlib.suppress(Exception):
            ray.kill(h)
    deadline = time.monotonic() + timeout_s
    while cpus and ray.available_resources().get("CPU", 0) < target - 1e-6 and time.monotonic() < deadline:
        time.sleep(0.1)


def release(owner) -> None:
    if owner in _OWNERS:
        _OWNERS.remove(owner)


# ----------------------------------------------------------------------------- the actor (runs on the nodes)


class ExecutorActor:
    """One executor on a node: one long-lived sandbox slot with its compile servers, and the node's cache."""

    def __init__(self, cfg_fields: dict):
        cfg_fields = dict(cfg_fields, workers=1, ray=None, ray_actors=None)
        self.cfg = ExecutionConfig(**cfg_fields)
        check_available(self.cfg.sandbox, self.cfg.allow_unsandboxed)
        self.cache: VerdictCache | None = None  # opened in the thread that runs programs (SQLite is per thread)
        self.root = Path(tempfile.mkdtemp(prefix="rewardranker-ray-exec-"))
        os.chmod(self.root, 0o755)
        self._uid_lock = _uid_block()  # a block of sandbox uids held for the actor's life
        self.uids = self._uid_lock.__enter__()
        self.slot: Slot | None = None
        self.slot_count = 0
        self.bound: set[str] = set()
        self.checked: dict[str, str] = {}
        self.stopping = False

    def info(self) -> dict:
        """Where this actor runs (also used as the 'ready' signal)."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
                "uids": (self.uids.start, self.uids.stop)}

    def run(self, language: str, items: list[_Item], toolchain: str, languages: list[str]):
        """Yield (key, verdict fields, from node cache) for each item, in order, as each finishes."""
        self.stopping = False
        self._check_toolchain(language, toolchain)
        if self.cache is None and self.cfg.use_cache:
            self.cache = VerdictCache(self.cfg.cache_path or default_cache_path())
        hits = self.cache.get_many([it.key for it in items]) if self.cache is not None else {}
        for it in items:
            if self.stopping:
                return
            if it.key in hits:
                yield it.key, hits[it.key], True
                continue
            fields = self.execute_one(self._slot(language, languages), it)
            if self.cache is not None and fields["status"] != INFRA_ERROR:
                self.cache.put(it.key, fields)
            yield it.key, fields, False
        if self.cache is not None:
            self.cache.flush()

    def execute_one(self, slot: Slot, item: _Item) -> dict:
        """Run one program in the slot (tests override this to simulate a program that kills its executor)."""
        return run_item(slot, item, self.cfg.fast)

    def stop(self) -> None:
        """Ask a running `run` to return after its current program (called from the control thread)."""
        self.stopping = True

    def close(self) -> None:
        """Stop compile servers and the sandbox, give back the uids, remove the scratch folder."""
        if self.slot is not None:
            self.slot.close()
            self.slot = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None
        parent = open_dir(self.root.parent)
        try:
            remove_tree(parent, self.root.name)  # as runner does: files a sandbox left behind, no symlink games
        finally:
            os.close(parent)
        self._uid_lock.__exit__(None, None, None)

    def _check_toolchain(self, language: str, toolchain: str) -> None:
        """Refuse to run when this node's toolchain differs from the driver's (the cache key would lie)."""
        if language not in self.checked:
            lang = langs.get(language)
            lang.check()
            self.checked[language] = lang.version
        if self.checked[language] != toolchain:
            import socket

            raise RewardRankerError(f"{language}: node {socket.gethostname()} has toolchain "
                                    f"{self.checked[language]!r} but the driver has {toolchain!r}; install the "
                                    f"same toolchains on every node (scripts/setup.sh)")

    def _slot(self, language: str, languages: list[str]) -> Slot:
        """The long-lived slot, rebuilt only when a language appears whose toolchain was not bound into it."""
        if self.slot is not None and language in self.bound:
            return self.slot
        if self.slot is not None:
            self.slot.close()
        self.bound |= set(languages) | {language}
        toolbox = self.cfg.toolbox
        prepare_toolbox(toolbox)
        lib = publish(toolbox, SUPERVISOR, "supervisor")
        binds: dict[Path, str] = {}
        for name in sorted(self.bound):
            binds.update(langs.get(name).prepare(toolbox) if self.cfg.fast or name == "ts" else {})
        self.slot_count += 1
        self.slot = Slot(self.slot_count, self.root, self.cfg, binds, self.uids[0], lib)
        return self.slot


# ----------------------------------------------------------------------------- the driver


@dataclass
class _Batch:
    language: str
    items: list[_Item]


@dataclass(eq=False)
class _Running:
    """A batch handed to an actor, and how many of its verdicts have come back."""

    batch: _Batch
    gen: object  # ray ObjectRefGenerator
    returned: int = 0


@dataclass(eq=False)
class _Actor:
    handle: object
    running: deque = field(default_factory=deque)  # of _Running; the first one is executing
    last_language: str | None = None


@dataclass
class RunStats:
    """What the last run did: programs sent to actors, answered by caches, retried, given up."""

    programs: int = 0
    driver_cache_hits: int = 0
    dispatched: int = 0
    node_cache_hits: int = 0
    actor_deaths: int = 0
    retried: int = 0
    infra_errors: int = 0
    actors: int = 0


class RayExecutor:
    """A pool of executor actors on a Ray cluster; reuse one across calls to keep sandboxes and servers warm."""

    def __init__(self, cfg: ExecutionConfig, actor_cls: type | None = None, max_tries: int = MAX_TRIES,
                 prefetch: int = 2, node_cache: Path | None = None, actor_cpus: float = 1.0):
        """`cfg.cache_path` is the driver's cache; each node's actors use `node_cache` or their own default.

        `actor_cpus` below 1 packs several actors per CPU (only for simulating a bigger cluster).
        """
        self.cfg, self.node_cache, self.actor_cpus = cfg, node_cache, actor_cpus
        self.ray = import_ray()
        self.actor_cls = actor_cls or ExecutorActor
        self.max_tries, self.prefetch = max_tries, prefetch
        self.actors: list[_Actor] = []
        self.starting: dict[object, object] = {}  # ready ref -> handle of a replacement being started
        self.stats = RunStats()
        self._remote_cls = None
        self._atexit = False
        self.start_error = ""

    # -- public -------------------------------------------------------------------------------------------
    def execute(self, problems: ProblemSet | dict[str, Problem], samples: list[Sample],
                progress: bool = True) -> list[Verdict]:
        """Like `runner.execute`, on the cluster: verdicts in `samples` order."""
        cfg = self.cfg
        problems = index_problems(problems)  # keyed by (language, problem_id)
        used = sorted({find_problem(problems, s).language for s in samples})
        for language in used:
            langs.get(language).check()  # the driver computes the cache keys from its own toolchain versions
        items = _items(problems, samples, cfg)
        self.stats = RunStats(programs=len(items))
        cache = VerdictCache(cfg.cache_path or default_cache_path()) if cfg.use_cache else None
        try:
            results = cache.get_many([it.key for it in items]) if cache is not None else {}
            cached = set(results)
            self.stats.driver_cache_hits = sum(it.key in cached for it in items)
            todo = list({it.key: it for it in items if it.key not in results}.values())
            if todo:
                bar = _progress(progress, len(items), len(items) - len(todo))
                try:
                    self._run(todo, used, results, cache, bar)
                finally:
                    bar.close()
        finally:
            if cache is not None:
                cache.close()
        infra = sum(1 for it in todo if results[it.key]["status"] == INFRA_ERROR)
        if infra:
            warnings.warn(f"{infra} of {len(todo)} programs got status InfraError (an executor or its sandbox "
                          "failed repeatedly); they are not cached, and are left out of pass@k and of training "
                          "data", stacklevel=3)
        return [Verdict(problem_id=s.problem_id, sample_id=s.sample_id, language=it.language,
                        program_hash=it.program_hash, cached=it.key in cached, verdict_rule=it.rule,
                        passed_multipl_e=results[it.key]["passed"] or results[it.key]["status"] == "Tampered",
                        **results[it.key])
                for s, it in zip(samples, items)]

    def wait_for_actors(self, n: int, timeout_s: float = 300.0) -> None:
        """Start the pool if needed and wait until `n` actors are in it (runs start as soon as one is)."""
        self._ensure_pool()
        self._await_ready(timeout_s, at_least=n)

    def shutdown(self) -> None:
        """Close every actor's sandbox (waiting briefly) and kill the actors."""
        if not self.ray.is_initialized():
            self.actors, self.starting = [], {}
            return
        started = [h for ref, h in self.starting.items() if self.ray.wait([ref], timeout=0)[0]]
        unscheduled = [h for h in self.starting.values() if h not in started]  # nothing to close yet
        handles = [a.handle for a in self.actors] + started
        for h in unscheduled:
            with contextlib.suppress(Exception):
                self.ray.kill(h)
        held = len(self.actors) + len(started)
        for h in handles:  # any of them may already be gone
            with contextlib.suppress(Exception):
                h.stop.options(concurrency_group="control").remote()
        closing = []
        for h in handles:
            with contextlib.suppress(Exception):
                closing.append(h.close.remote())
        if closing:
            self.ray.wait(closing, num_returns=len(closing), timeout=30.0)
        kill_and_wait(self.ray, handles, held * self.actor_cpus)
        self.actors, self.starting = [], {}
        release(self)

    # -- pool -----------------------------------------------------------------------------------------------
    def _remote(self):
        if self._remote_cls is None:
            self._remote_cls = self.ray.remote(num_cpus=self.actor_cpus, max_restarts=0, max_task_retries=0,
                                               concurrency_groups={"control": 1})(self.actor_cls)
        return self._remote_cls

    def _actor_fields(self) -> dict:
        """The ExecutionConfig the actors get: the node's own default toolbox and cache unless one was given."""
        from dataclasses import fields

        out = {f.name: getattr(self.cfg, f.name) for f in fields(self.cfg)}
        out["cache_path"] = self.node_cache
        if out["toolbox"] == default_toolbox():
            out["toolbox"] = None
        return out

    def _start_actor(self) -> None:
        handle = self._remote().options(scheduling_strategy="SPREAD").remote(self._actor_fields())
        self.starting[handle.info.remote()] = handle

    def _ensure_pool(self) -> None:
        """Start one actor per free cluster CPU (or `cfg.ray_actors`) unless the pool already exists."""
        if self.actors or self.starting:
            return
        connect(self.cfg.ray)
        free = claim_cluster(self)
        if not self._atexit:  # registered after ray.init's own handler, so it runs before Ray shuts down
            atexit.register(self.shutdown)
            self._atexit = True
        n = self.cfg.ray_actors or max(1, int(free / self.actor_cpus))
        for _ in range(n):
            self._start_actor()
        self._await_ready(timeout=NO_ACTOR_TIMEOUT_S, at_least=1)

    def _await_ready(self, timeout: float, at_least: int = 0) -> None:
        """Move started actors into the pool; wait up to `timeout` until `at_least` are in it."""
        deadline = time.monotonic() + timeout
        while self.starting:
            wait = max(0.0, deadline - time.monotonic()) if len(self.actors) < at_least else 0.0
            ready, _ = self.ray.wait(list(self.starting), num_returns=len(self.starting), timeout=wait)
            for ref in ready:
                handle = self.starting.pop(ref)
                try:
                    self.ray.get(ref)
                    self.actors.append(_Actor(handle))
                except self.ray.exceptions.RayActorError as e:  # died while starting: a smaller pool
                    self.start_error = _first_line(e)
                except self.ray.exceptions.RayTaskError as e:
                    raise _user_error(e) from None
            if len(self.actors) >= at_least or time.monotonic() >= deadline:
                break
        if len(self.actors) < at_least:
            why = (f"the last one failed: {self.start_error}" if self.start_error else
                   f"none started within {timeout:.0f} s: does the cluster have a free CPU? (`ray status`)")
            raise RewardRankerError(f"{len(self.actors)} Ray executor actors running, {at_least} needed; {why}")

    # -- one run ----------------------------------------------------------------------------------------------
    def _run(self, todo: list[_Item], used: list[str], results: dict, cache, bar) -> None:
        self._ensure_pool()
        self.stats.actors = len(self.actors)
        toolchains = {language: langs.get(language).version for language in used}
        queues = _queues(todo)
        tries: dict[str, int] = {}
        left = len(todo)
        self.stats.dispatched = 0
        idle_since = None
        try:
            while left:
                self._await_ready(0.0)
                for actor in self.actors:
                    while len(actor.running) < self.prefetch and self._worth_dispatching(actor, queues):
                        batch = _next_batch(queues, actor.last_language, len(self.actors))
                        gen = actor.handle.run.options(num_returns="streaming").remote(
                            batch.language, batch.items, toolchains[batch.language], used)
                        actor.running.append(_Running(batch, gen))
                        actor.last_language = batch.language
                        self.stats.dispatched += len(batch.items)
                if not self.actors:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > NO_ACTOR_TIMEOUT_S:
                        raise RewardRankerError(f"every Ray executor actor died and none restarted within "
                                                f"{NO_ACTOR_TIMEOUT_S:.0f} s; {left} programs not run")
                else:
                    idle_since = None
                left -= self._collect(queues, tries, results, cache, bar)
                if cache is not None:
                    cache.flush()
        except KeyboardInterrupt:
            self.shutdown()
            raise
        except BaseException:
            self._cancel_running()
            raise

    def _worth_dispatching(self, actor: _Actor, queues: dict) -> bool:
        """A first batch whenever work is left; a prefetched second one only while every actor can get work."""
        left = sum(len(q) for q in queues.values())
        return left > 0 and (not actor.running or left > len(self.actors))

    def _collect(self, queues: dict, tries: dict, results: dict, cache, bar) -> int:
        """Wait briefly for verdicts; store them; handle dead actors. Returns how many programs finished."""
        gens = {id(r.gen): (a, r) for a in self.actors for r in a.running}
        waitable = [r.gen for a in self.actors for r in a.running] + list(self.starting)
        if not waitable:
            time.sleep(0.2)
            return 0
        ready, _ = self.ray.wait(waitable, num_returns=len(waitable), timeout=0)  # everything ready now
        if not ready:
            ready, _ = self.ray.wait(waitable, num_returns=1, timeout=1.0)
        finished = 0
        for obj in ready:
            if id(obj) not in gens:
                continue  # a replacement actor became ready: picked up by the next _await_ready
            actor, running = gens[id(obj)]
            if actor not in self.actors:
                continue
            try:
                finished += self._take(running, results, cache, bar)
            except StopIteration:
                actor.running.remove(running)
                _requeue(queues, running.batch.language, running.batch.items[running.returned:])  # early stop
            except self.ray.exceptions.RayActorError:
                finished += self._actor_died(actor, queues, tries, results, cache, bar)
        return finished

    def _take(self, running: _Running, results: dict, cache, bar) -> int:
        """Store the next verdict of a batch's stream (1 if it was new); raises StopIteration at its end."""
        try:
            key, fields, from_node = self.ray.get(next(running.gen))
        except self.ray.exceptions.RayTaskError as e:
            raise _user_error(e) from None
        running.returned += 1
        self.stats.node_cache_hits += from_node
        if key in results:
            return 0
        results[key] = fields
        if cache is not None and fields["status"] != INFRA_ERROR:  # an infrastructure failure is retried next run
            cache.put(key, fields)
        bar.advance()
        return 1

    def _actor_died(self, actor: _Actor, queues: dict, tries: dict, results: dict, cache, bar) -> int:
        """Keep what the dead actor returned, requeue the rest, charge the program it was running a try.

        Returns the programs finished here (verdicts that were still in the stream, and give-ups).
        """
        self.actors.remove(actor)
        self.stats.actor_deaths += 1
        finished = 0
        for running in actor.running:  # verdicts sent before the death are still in the streams, in order
            with contextlib.suppress(Exception):
                while self.ray.wait([running.gen], timeout=0.5)[0]:
                    finished += self._take(running, results, cache, bar)
        culprit_charged = False
        for running in actor.running:  # the actor runs its batches in order: the first unreturned program
            rest = running.batch.items[running.returned:]
            if rest and not culprit_charged:
                culprit_charged = True
                culprit = rest[0]
                tries[culprit.key] = tries.get(culprit.key, 0) + 1
                if tries[culprit.key] >= self.max_tries:
                    results[culprit.key] = _infra_error(tries[culprit.key])
                    self.stats.infra_errors += 1
                    bar.advance()
                    finished += 1
                    rest = rest[1:]
            self.stats.retried += len(rest)
            _requeue(queues, running.batch.language, rest)
        actor.running.clear()
        with contextlib.suppress(Exception):
            self.ray.kill(actor.handle)
        self._start_actor()
        return finished

    def _cancel_running(self) -> None:
        for actor in self.actors:
            for running in actor.running:
                with contextlib.suppress(Exception):
                    self.ray.cancel(running.gen)
            actor.running.clear()


def _infra_error(tries: int) -> dict:
    return {"status": INFRA_ERROR, "passed": False, "exit_code": None, "duration_s": 0.0,
            "stderr": f"the executor running this program died {tries} times (node lost, killed, or out of "
                      f"memory); not retried again", "stdout": ""}


def _first_line(e) -> str:
    """The informative line of a Ray error (its own text, else the cause's last line)."""
    lines = [ln.strip() for ln in str(getattr(e, "cause", None) or e).splitlines() if ln.strip()]
    return next((ln for ln in lines if "Error" in ln and "Traceback" not in ln), lines[-1] if lines else repr(e))


def _user_error(e) -> Exception:
    """The error an actor raised, as the driver should show it (a RewardRankerError stays one line)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, RewardRankerError):
        return cause
    return RewardRankerError(f"a Ray executor actor failed: {str(cause or e).strip().splitlines()[-1]}")


def _queues(todo: list[_Item]) -> dict[str, deque]:
    """The programs still to dispatch, one queue per language."""
    out: dict[str, deque] = {}
    for it in todo:
        out.setdefault(it.language, deque()).append(it)
    return out


def _next_batch(queues: dict[str, deque], last_language: str | None, n_actors: int) -> _Batch:
    """Programs of the actor's last language while any is left (its compile server is warm), else of the
    language with most left; a quarter of an even share each, so batches shrink to 1 program near the end."""
    left = sum(len(q) for q in queues.values())
    size = max(1, min(BATCH_MAX, math.ceil(left / (n_actors * 4))))
    language = last_language if last_language and queues.get(last_language) else \
        max((lang for lang in queues if queues[lang]), key=lambda lang: len(queues[lang]))
    q = queues[language]
    return _Batch(language, [q.popleft() for _ in range(min(size, len(q)))])


def _requeue(queues: dict[str, deque], language: str, items: list[_Item]) -> None:
    queues.setdefault(language, deque()).extendleft(reversed(items))


# ----------------------------------------------------------------------------- the default pool per process

_POOLS: dict[tuple, RayExecutor] = {}


def pool_for(cfg: ExecutionConfig) -> RayExecutor:
    """The process's executor pool for this config (created on first use, shut down at exit)."""
    from dataclasses import fields

    key = tuple((f.name, repr(getattr(cfg, f.name))) for f in fields(cfg) if f.name != "workers")
    if key not in _POOLS:
        _POOLS[key] = RayExecutor(cfg)
    return _POOLS[key]


def execute_ray(problems: ProblemSet, samples: list[Sample], cfg: ExecutionConfig,
                progress: bool = True) -> list[Verdict]:
    """`execute()` on the Ray cluster named by `cfg.ray`; a fully cached run neither connects nor dispatches."""
    return pool_for(cfg).execute(problems, samples, progress)


def shutdown_pools() -> None:
    """Close and kill every executor actor this process started."""
    for pool in list(_POOLS.values()):
        pool.shutdown()
    _POOLS.clear()
