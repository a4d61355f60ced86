"""The self-training loop's run directory: an ordered list of stages, each finished once, resumable anywhere.

Layout of `<run_dir>/`:
    config.json                      the resolved config and its hash (a run dir belongs to one config)
    log.txt                          one line per stage start / finish, with wall and CPU seconds
    iter_<k>/<stage>/                each stage's outputs (JSONL records, model folders, metrics.json)
    iter_<k>/<stage>/.done           completion marker, written atomically AFTER the outputs
    report/                          report.md, report.json, report.png

A stage without its marker is (re)run from an empty folder, so an interrupted run (Ctrl-C, SIGKILL) resumes at
the stage it was in and, since every stage seeds itself from the config seed and its own name, ends with the
same results as an uninterrupted one. `rerun=` drops the markers of one stage and everything after it.

    >>> from rewardranker.selftrain import SelfTrainConfig, run_selftrain
    >>> run_selftrain(SelfTrainConfig.from_file("src/rewardranker/configs/default.yaml"), Path("runs/st"))
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.runio import content_hash, read_jsonl_tolerant, write_json
from rewardranker.selftrain.config import SelfTrainConfig

MARKER = ".done"


@dataclass(frozen=True)
class Stage:
    """One step of the loop: `fn(ctx, k, out_dir)` writes its outputs into `out_dir`."""

    name: str  # e.g. "iter_1/ppo"
    iteration: int | None
    fn: Callable


def plan(cfg: SelfTrainConfig) -> list[Stage]:
    """Every stage of the run, in order."""
    from rewardranker.selftrain import steps

    out = []
    for k in range(cfg.iterations + 1):
        first = [("sft", steps.sft)] if k == 0 else [("ppo", steps.ppo)]
        body = [("sample", steps.sample_train), ("execute", steps.execute_train), ("data", steps.rm_data),
                ("reward", steps.train_reward), ("eval_sample", steps.sample_eval),
                ("eval_execute", steps.execute_eval), ("eval_score", steps.score_eval), ("metrics", steps.metrics)]
        out += [Stage(f"iter_{k}/{name}", k, fn) for name, fn in first + body]
    out.append(Stage("report", None, steps.report))
    return out


def protocol_independent_stages(cfg: SelfTrainConfig) -> list[str]:
    """Stages whose outputs do not depend on the iteration-protocol settings (rm_update, rm_init,
    rm_data_window, dedup, hard-negative weight/quantile): all of iteration 0, and iteration 1's PPO (against
    RM_0), sampling and execution. Ablation arms of one seed can share them (see benchmarks/selftrain.py)."""
    shared = {"ppo", "sample", "execute", "eval_sample", "eval_execute"}
    return [s.name for s in plan(cfg) if s.iteration == 0 or (s.iteration == 1 and s.name.split("/")[1] in shared)]


def share_stages(source: Path, dest: Path, names: list[str]) -> list[str]:
    """Hard-link the finished stages `names` of run `source` into run `dest` (which must not have them yet)."""
    done = []
    for name in names:
        src, dst = stage_dir(source, name), stage_dir(dest, name)
        if not (src / MARKER).exists() or dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns("checkpoints"))
        done.append(name)
    return done


def stage_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / name


def is_done(run_dir: Path, name: str) -> bool:
    return (stage_dir(run_dir, name) / MARKER).exists()


def run_selftrain(cfg: SelfTrainConfig, run_dir: Path, rerun: str | None = None, progress: bool = True,
                  log: Callable[[str], None] = print, capture: bool = False, only: set[str] | None = None) -> Path:
    """Run (or resume) every stage not yet finished; returns the report folder.

    `capture=True` (the CLI): everything the stages print (trainer logs, framework warnings, inner progress bars,
    subprocess output) goes to `<run_dir>/log.txt`; the terminal shows one progress line per stage and its
    timing (plain lines when it is not a TTY). `only`: run just these stages (e.g. the ones ablation arms share).
    """
    from rewardranker.selftrain.steps import Context

    run_dir = Path(run_dir)
    _claim_run_dir(cfg, run_dir)
    stages = plan(cfg)
    if rerun is not None:
        _forget_from(run_dir, stages, rerun)
    ctx = Context.create(cfg, run_dir, progress and not capture)
    todo = [s for s in stages if not is_done(run_dir, s.name) and (only is None or s.name in only)]
    done = sum(is_done(run_dir, s.name) for s in stages)
    if todo and done:
        log(f"resuming {run_dir}: {done} of {len(stages)} stages already done")
    for i, stage in enumerate(todo):
        if capture:
            with StageDisplay(run_dir, f"[{i + 1}/{len(todo)}] {stage.name}") as display:
                _run_stage(ctx, stage, display.log_only)
                display.finish(_timing_text(run_dir, stage.name))
        else:
            _run_stage(ctx, stage, log)
    return stage_dir(run_dir, "report")


def _timing_text(run_dir: Path, name: str) -> str:
    import json

    m = json.loads((stage_dir(run_dir, name) / MARKER).read_text(encoding="utf-8"))
    return f"{m['wall_s']:.1f} s wall, {m['cpu_s']:.1f} s CPU"


class StageDisplay:
    """While a stage runs, file descriptors 1 and 2 point at the run's log.txt (so do its subprocesses'), and
    the terminal shows one spinner line with the elapsed time, replaced by the stage's timing when it ends."""

    def __init__(self, run_dir: Path, label: str):
        self.run_dir, self.label = Path(run_dir), label

    def __enter__(self) -> Self:
        import sys

        from rich.console import Console

        sys.stdout.flush(), sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        self.terminal = os.fdopen(os.dup(self.saved[1]), "w", buffering=1)
        self.console = Console(file=self.terminal, highlight=False)
        self.logfile = open(self.run_dir / "log.txt", "a", encoding="utf-8")
        os.dup2(self.logfile.fileno(), 1)
        os.dup2(self.logfile.fileno(), 2)
        self.streams = sys.stdout, sys.stderr  # Python-level writers too (they may not be fds 1 and 2)
        sys.stdout = sys.stderr = self.logfile
        self.t0 = time.perf_counter()
        self.status = self.console.status(self.label) if self.console.is_terminal else None
        if self.status is not None:
            self.status.start()
        else:
            self.console.print(time.strftime("%H:%M:%S ") + self.label + " ...")
        return self

    def log_only(self, line: str) -> None:
        """Stage start/finish lines: to log.txt (already written there by `_log`), not the terminal."""

    def finish(self, timing: str) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
        self.console.print(time.strftime("%H:%M:%S ") + f"{self.label}: done, {timing}")

    def __exit__(self, *exc) -> None:
        import sys

        if self.status is not None:
            self.status.stop()
        if exc[0] is not None:  # on a terminal or not: say where it stopped and how to go on
            self.console.print(f"{self.label}: stopped ({exc[0].__name__}); details in {self.run_dir}/log.txt; "
                               "the same command resumes at this stage", soft_wrap=True)
        sys.stdout.flush(), sys.stderr.flush()
        sys.stdout, sys.stderr = self.streams
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.logfile.close()
        self.terminal.close()


def _run_stage(ctx, stage: Stage, log: Callable[[str], None]) -> None:
    out = stage_dir(ctx.run_dir, stage.name)
    if out.exists():
        shutil.rmtree(out)  # leftovers of an interrupted attempt: start the stage clean
    out.mkdir(parents=True)
    shared_sft = stage.name == "iter_0/sft" and ctx.cfg.sft_seed >= 0
    seed_everything(ctx.cfg.sft_seed if shared_sft else ctx.cfg.seed, stage.name)
    _log(ctx.run_dir, log, f"{stage.name}: start")
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    stage.fn(ctx, stage.iteration, out)
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    write_json(out / MARKER, {"stage": stage.name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    _log(ctx.run_dir, log, f"{stage.name}: done in {wall:.1f}s wall, {cpu:.1f}s CPU")


def stage_timings(run_dir: Path) -> list[dict]:
    """The markers of finished stages, in run order (stage, wall_s, cpu_s)."""
    import json

    out = []
    for marker in Path(run_dir).glob(f"**/{MARKER}"):
        out.append(json.loads(marker.read_text(encoding="utf-8")))
    order = {name: i for i, name in enumerate(_stage_order(run_dir))}
    return sorted(out, key=lambda m: order.get(m["stage"], len(order)))


def _stage_order(run_dir: Path) -> list[str]:
    cfg = load_run_config(run_dir)
    return [s.name for s in plan(cfg)]


def load_run_config(run_dir: Path) -> SelfTrainConfig:
    """The config a run directory was created with."""
    import json

    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise RewardRankerError(f"{run_dir}: not a self-training run directory (config.json is missing)")
    return SelfTrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["config"], path)


def _claim_run_dir(cfg: SelfTrainConfig, run_dir: Path) -> None:
    """Write config.json, or check that an existing run dir was made by the same settings."""
    import json

    path = run_dir / "config.json"
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before.get("hash") != cfg.hash():
            changed = sorted(k for k, v in cfg.to_dict().items() if before.get("config", {}).get(k) != v)
            raise ConfigError(changed[0] if changed else "(config)",
                              f"differs from the run in {run_dir} (changed: {', '.join(changed)}); "
                              "use a new --run-dir, or the config it was started with", cfg.source or None)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, {"hash": cfg.hash(), "config": cfg.to_dict()})


def _forget_from(run_dir: Path, stages: list[Stage], name: str) -> None:
    names = [s.name for s in stages]
    if name not in names:
        raise RewardRankerError(f"--rerun {name!r}: no such stage; stages are: {', '.join(names)}")
    for later in names[names.index(name):]:
        (stage_dir(run_dir, later) / MARKER).unlink(missing_ok=True)


def seed_everything(seed: int, stage: str) -> int:
    """Seed Python, NumPy and torch from the config seed and the stage name (same in a resumed process)."""
    import numpy as np

    s = int(content_hash(str(seed), stage)[:8], 16)
    random.seed(s)
    np.random.seed(s)
    try:
        import torch

        torch.manual_seed(s)
    except ImportError:  # pragma: no cover
        pass
    return s


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _log(run_dir: Path, log: Callable[[str], None], line: str) -> None:
    stamped = time.strftime("%H:%M:%S ") + line
    with open(run_dir / "log.txt", "a", encoding="utf-8") as f:
        f.write(stamped + "\n")
    log(stamped)


def read_records(path: Path) -> list[dict]:
    """Records a finished stage wrote (complete files: the marker is only written after them)."""
    return read_jsonl_tolerant(path)
