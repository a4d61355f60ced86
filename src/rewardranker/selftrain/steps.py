"""The bodies of the loop's stages. Each `fn(ctx, k, out)` reads earlier stages' folders and writes into `out`.

Held-out problems are only ever passed to the eval_* stages: the training stages (sft, ppo, sample, execute,
data, reward) see `ctx.train` alone, and `Context.create` refuses a config whose two sets share a problem.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardranker.errors import ConfigError
from rewardranker.problems import index_problems, load_problems, truncate
from rewardranker.records import Problem, Sample, Score, Verdict, record_from_dict, to_dict
from rewardranker.runio import content_hash, read_jsonl, write_json, write_jsonl
from rewardranker.selftrain import stages
from rewardranker.selftrain.config import SelfTrainConfig
from rewardranker.selftrain.hardneg import mine_hard_negatives

ITERATION_STRIDE = 100_000  # RM-data sample ids are k * stride + sample_id: unique across iterations
REFERENCE_ID = ITERATION_STRIDE - 1  # the reference solution's id in iteration 0's data


@dataclass
class Context:
    """What every stage needs: the config, its stage configs, the run dir and the two problem sets."""

    cfg: SelfTrainConfig
    run_dir: Path
    progress: bool
    train: list[Problem]
    heldout: list[Problem]
    stage_cfgs: dict[str, Any]

    @classmethod
    def create(cls, cfg: SelfTrainConfig, run_dir: Path, progress: bool) -> Context:
        train = select_problems(cfg.train_problems, cfg.languages, cfg.max_train_problems, cfg.seed, "train")
        heldout = select_problems(cfg.eval_problems, cfg.languages, cfg.max_eval_problems, cfg.seed, "eval")
        check_disjoint(train, heldout, cfg.source)
        return cls(cfg, Path(run_dir), progress, train, heldout, cfg.stage_configs())

    def path(self, stage: str, *parts: str) -> Path:
        return self.run_dir.joinpath(stage, *parts)

    def train_subset(self, k: int) -> list[Problem]:
        """The training problems iteration k samples and runs PPO on (a fixed random subset per iteration)."""
        n = self.cfg.problems_per_iteration
        if not n or n >= len(self.train):
            return self.train
        keep = set(random.Random(f"{self.cfg.seed}:iteration:{k}").sample(range(len(self.train)), n))
        return [p for i, p in enumerate(self.train) if i in keep]


def select_problems(specs: list[str], languages: list[str], limit: int, seed: int, which: str) -> list[Problem]:
    """Load every spec, keep the configured languages, then a fixed random subset of `limit` (0 = all)."""
    field = f"{which}_problems"
    problems = [p for spec in specs for p in load_problems(spec) if p.language in languages]
    if not problems:
        raise ConfigError(field, f"= {specs} holds no problem in languages {languages}")
    index_problems(problems)  # (language, id) keys must be unique
    if limit and limit < len(problems):
        keep = set(random.Random(f"{seed}:{which}").sample(range(len(problems)), limit))
        problems = [p for i, p in enumerate(problems) if i in keep]
    return problems


def check_disjoint(train: list[Problem], heldout: list[Problem], source: str) -> None:
    """Refuse a config whose held-out problems (by id or by prompt) also appear among the training problems."""
    ids = {p.key for p in train} & {p.key for p in heldout}
    prompts = {p.prompt for p in train} & {p.prompt for p in heldout}
    if ids or prompts:
        example = f"{min(ids)[1]} ({min(ids)[0]})" if ids else next(iter(prompts))[:60]
        raise ConfigError("eval_problems", f"shares {max(len(ids), len(prompts))} problems with train_problems "
                                           f"(e.g. {example!r}): held-out problems must never be trained on",
                          source or None)


# --------------------------------------------------------------------------- policy stages


def policy_dir(ctx: Context, k: int) -> Path:
    """The policy of iteration k: the SFT model, then each PPO run's final policy (as `ppo` recorded it)."""
    if k == 0:
        return ctx.path("iter_0/sft", "model")
    import json

    rel = json.loads(ctx.path(f"iter_{k}/ppo", "policy.json").read_text(encoding="utf-8"))["policy"]
    return ctx.path(f"iter_{k}/ppo", rel)


def reward_dir(ctx: Context, k: int) -> Path:
    return ctx.path(f"iter_{k}/reward", "model")


def sft(ctx: Context, k: int, out: Path) -> None:
    """Iteration 0: build the local generator (or take the given model) and fine-tune it on reference solutions.

    With `sft_cache` set, a finished SFT stage is stored there under a hash of everything that determines it
    (training text, generator, SFT settings, seed) and reused by any later run with the same inputs."""
    examples = [(p.prompt, p.canonical_solution) for p in ctx.train if p.canonical_solution]
    if not examples:
        raise ConfigError("train_problems", "hold no reference solutions (canonical_solution): SFT needs them",
                          ctx.cfg.source or None)
    cached = sft_cache_dir(ctx, examples)
    if cached is not None and (cached / MARKER_OK).exists():
        shutil.copytree(cached, out, dirs_exist_ok=True)
        (out / MARKER_OK).unlink()
        write_json(out / "sft.json", {**read_json(out / "sft.json"), "cache": str(cached)})
        return
    base = ctx.cfg.generator
    if base == "local":
        texts = [p.prompt + (p.canonical_solution or "") for p in ctx.train]  # training text only
        base = str(stages.build_generator(texts, out / "base", ctx.cfg.generator_arch, ctx.cfg.generator_size,
                                          ctx.stage_cfgs["sft"].seed))
    stages.sft(ctx.stage_cfgs["sft"], base, examples, out / "model")
    write_json(out / "sft.json", {"base": base, "examples": len(examples)})
    if cached is not None:
        _store_in_cache(out, cached)


MARKER_OK = ".complete"


def sft_cache_dir(ctx: Context, examples: list[tuple[str, str]]) -> Path | None:
    """Where this run's SFT result is cached (None when `sft_cache` is empty)."""
    if not ctx.cfg.sft_cache:
        return None
    import json

    key = {"examples": content_hash(json.dumps(examples)), "generator": ctx.cfg.generator,
           "arch": ctx.cfg.generator_arch, "size": ctx.cfg.generator_size,
           "sft": dataclasses.asdict(ctx.stage_cfgs["sft"]), "format": 1}
    return Path(ctx.cfg.sft_cache).expanduser() / content_hash(json.dumps(key, sort_keys=True))[:20]


def _store_in_cache(out: Path, cached: Path) -> None:
    """Copy the finished stage into the cache atomically (a temp folder renamed into place)."""
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(out, tmp, ignore=shutil.ignore_patterns("checkpoints", "runs"))
    (tmp / MARKER_OK).write_text("ok\n", encoding="utf-8")
    try:
        tmp.rename(cached)
    except OSError:  # another run stored it first
        shutil.rmtree(tmp, ignore_errors=True)


def ppo(ctx: Context, k: int, out: Path) -> None:
    """Iteration k >= 1: PPO from the SFT model (from scratch, as in the paper) against the RM of iteration k-1."""
    rm = stages.load_rm(reward_dir(ctx, k - 1), ctx.cfg.ray)
    by_prompt = {p.prompt: p for p in ctx.train}
    problems = index_problems(ctx.train)

    def reward_fn(prompts: list[str], completions: list[str]) -> list[float]:
        samples = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            p = by_prompt[prompt]
            samples.append(Sample(p.problem_id, i, truncate(completion, p.stop_tokens), language=p.language))
        return rm.score(problems, samples, progress=False)

    final = stages.ppo(ctx.stage_cfgs["ppo"], policy_dir(ctx, 0), reward_fn, ctx.train_subset(k), out / "model",
                       ctx.progress)
    write_json(out / "policy.json", {"policy": str(Path(final).relative_to(out)), "from": str(policy_dir(ctx, 0)),
                                     "reward_model": str(reward_dir(ctx, k - 1))})


# --------------------------------------------------------------------------- sampling and execution


def _generation_cfg(ctx: Context, k: int, n: int, salt: int) -> Any:
    return dataclasses.replace(ctx.stage_cfgs["generation"], model=str(policy_dir(ctx, k)), n=n,
                               seed=ctx.cfg.seed + 1000 * k + salt)


def sample_train(ctx: Context, k: int, out: Path) -> None:
    cfg = _generation_cfg(ctx, k, ctx.cfg.samples_per_problem, salt=0)
    stages.sample(cfg, ctx.train_subset(k), out / "samples.jsonl", ctx.progress)


def sample_eval(ctx: Context, k: int, out: Path) -> None:
    cfg = _generation_cfg(ctx, k, ctx.cfg.eval_samples_per_problem, salt=500)
    stages.sample(cfg, ctx.heldout, out / "samples.jsonl", ctx.progress)


def load_samples(path: Path) -> list[Sample]:
    return [record_from_dict(Sample, obj, path, i + 1) for i, obj in enumerate(read_jsonl(path))]


INFRA_ERROR = "InfraError"  # the sandbox failed, not the program: such a verdict says nothing about the program


def load_verdicts(path: Path) -> dict[tuple[str, str, int], bool]:
    """(language, problem_id, sample_id) -> passed; verdicts the executor marks as infrastructure errors are
    left out (never judged: no label, no metric)."""
    return {(r.get("language") or "", r["problem_id"], r["sample_id"]): bool(r["passed"]) for r in read_jsonl(path)
            if r.get("status") != INFRA_ERROR}


def _execute(ctx: Context, problems: list[Problem], samples_path: Path, out: Path) -> None:
    verdicts: list[Verdict] = stages.execute(problems, load_samples(samples_path), ctx.stage_cfgs["execution"],
                                             ctx.progress)
    write_jsonl(out / "verdicts.jsonl", [to_dict(v) for v in verdicts])


def execute_train(ctx: Context, k: int, out: Path) -> None:
    _execute(ctx, ctx.train_subset(k), ctx.path(f"iter_{k}/sample", "samples.jsonl"), out)


def execute_eval(ctx: Context, k: int, out: Path) -> None:
    _execute(ctx, ctx.heldout, ctx.path(f"iter_{k}/eval_sample", "samples.jsonl"), out)


# --------------------------------------------------------------------------- reward-model data and training


def rm_data(ctx: Context, k: int, out: Path) -> None:
    """The RM's training data for iteration k, built as the protocol settings say (see SelfTrainConfig).

    Iteration 0: every sample (+ the reference solutions). Iteration k: the samples are scored by RM_{k-1} and
    its hard negatives mined (recorded in every arm, for the metrics); then `rm_update` says what is added and
    `rm_data_window` whether it is added to all earlier data or to the reference solutions alone."""
    samples = load_samples(ctx.path(f"iter_{k}/sample", "samples.jsonl"))
    passed = load_verdicts(ctx.path(f"iter_{k}/execute", "verdicts.jsonl"))
    samples = [s for s in samples if s.key in passed]  # (language, id, sample): no label, no training record
    if k == 0:
        records = [_data_record(s, k, passed, 1.0, "sample") for s in samples] + reference_records(ctx)
        write_data(ctx, out, records, 0)
        return
    rm = stages.load_rm(reward_dir(ctx, k - 1), ctx.cfg.ray)
    scored = rm.score(index_problems(ctx.train), samples, progress=ctx.progress)
    scores = {s.key: v for s, v in zip(samples, scored)}
    write_jsonl(out / "scores.jsonl", [to_dict(Score(p, i, v, lang)) for (lang, p, i), v in scores.items()])
    refs = [Sample(p.problem_id, REFERENCE_ID, p.canonical_solution, language=p.language)
            for p in ctx.train_subset(k) if p.canonical_solution and ctx.cfg.reference_positives]
    ref_scores = dict(zip((r.problem_key for r in refs), rm.score(index_problems(ctx.train), refs, progress=False)))
    hard = mine_hard_negatives(samples, passed, scores, ctx.cfg.hard_negative_quantile, ref_scores)
    write_jsonl(out / "hard_negatives.jsonl", [dataclasses.asdict(h) for h in hard])
    hard_keys = {(h.language, h.problem_id, h.sample_id) for h in hard}
    w = ctx.cfg.hard_negative_weight
    new: list[dict] = []
    if ctx.cfg.rm_update == "self_training":
        new = [_data_record(s, k, passed, w if s.key in hard_keys else 1.0,
                            "hard_negative" if s.key in hard_keys else "sample") for s in samples]
    elif ctx.cfg.rm_update == "hard_negatives":
        new = [_data_record(s, k, passed, w, "hard_negative") for s in samples if s.key in hard_keys]
    if ctx.cfg.rm_data_window == "all":
        before = read_jsonl(ctx.path(f"iter_{k - 1}/data", "rm_data.jsonl"))
    else:
        before = reference_records(ctx)
    write_data(ctx, out, before + new, len(new))


def reference_records(ctx: Context) -> list[dict]:
    """Each training problem's reference solution as a passing candidate (when `reference_positives`)."""
    if not ctx.cfg.reference_positives:
        return []
    refs = [Sample(p.problem_id, REFERENCE_ID, p.canonical_solution, language=p.language) for p in ctx.train
            if p.canonical_solution]
    return [_data_record(s, 0, {s.key: True}, 1.0, "reference") for s in refs]


def write_data(ctx: Context, out: Path, records: list[dict], added: int) -> None:
    """rm_data.jsonl (deduplicated when `dedup_programs`) and data_stats.json (counts for the report)."""
    before = len(records)
    if ctx.cfg.dedup_programs:
        records = dedup_programs(records)
    write_jsonl(out / "rm_data.jsonl", records)
    write_json(out / "data_stats.json", {"records": len(records), "added": added, "duplicates_dropped":
                                         before - len(records), "passing": sum(r["passed"] for r in records)})


def normalise_program(code: str) -> str:
    """The program with trailing whitespace of every line and blank lines at both ends removed."""
    return "\n".join(line.rstrip() for line in code.strip("\n").splitlines()).strip()


def dedup_programs(records: list[dict]) -> list[dict]:
    """One record per (language, problem, normalised program), keeping the first one seen and the largest weight.

    Verdicts of identical programs agree (the executor is deterministic per program); if they ever differ the
    record is marked failing, the safe side for a reward model."""
    kept: dict[tuple[str, str, str], dict] = {}
    for r in records:
        key = (r.get("language") or "", r["problem_id"], normalise_program(r["completion"]))
        if key not in kept:
            kept[key] = dict(r)
            continue
        first = kept[key]
        first["weight"] = max(first["weight"], r["weight"])
        first["passed"] = first["passed"] and r["passed"]
        if r["origin"] == "hard_negative":
            first["origin"] = "hard_negative"
    return list(kept.values())


def _data_record(s: Sample, k: int, passed: dict, weight: float, origin: str) -> dict:
    return {"problem_id": s.problem_id, "sample_id": k * ITERATION_STRIDE + s.sample_id, "language": s.language,
            "completion": s.completion, "passed": passed[s.key], "weight": weight,
            "iteration": k, "origin": origin}


def train_reward(ctx: Context, k: int, out: Path) -> None:
    """RM_k on this iteration's data: from the seed backbone, or continued from RM_{k-1}; with `rm_update:
    none` (no self-training) RM_0 is copied unchanged."""
    if k > 0 and ctx.cfg.rm_update == "none":
        shutil.copytree(reward_dir(ctx, k - 1), out / "model")
        return
    data = read_jsonl(ctx.path(f"iter_{k}/data", "rm_data.jsonl"))
    samples = [Sample(r["problem_id"], r["sample_id"], r["completion"], language=r.get("language")) for r in data]
    passed = {s.key: r["passed"] for s, r in zip(samples, data)}
    weights = {s.key: r["weight"] for s, r in zip(samples, data)}
    backbone = str(reward_dir(ctx, k - 1)) if k > 0 and ctx.cfg.rm_init == "continue" else _reward_backbone(ctx)
    cfg = dataclasses.replace(ctx.stage_cfgs["reward"], backbone=backbone, seed=ctx.cfg.seed + k)
    stages.train_rm(cfg, index_problems(ctx.train), samples, passed, out / "model", weights)


def _reward_backbone(ctx: Context) -> str:
    choice = ctx.cfg.reward_backbone
    if choice == "sft":
        return str(policy_dir(ctx, 0))
    return "" if choice == "minilm" else choice


def score_eval(ctx: Context, k: int, out: Path) -> None:
    """Score held-out samples: this iteration's with RM_k (`scores.jsonl`) and with RM_{k-1}
    (`scores_prev.jsonl`: exploitation and on-policy robustness), and iteration 0's fixed set with RM_k."""
    problems = index_problems(ctx.heldout)
    this_iter = load_samples(ctx.path(f"iter_{k}/eval_sample", "samples.jsonl"))
    jobs = [("scores.jsonl", k, this_iter)]
    if k > 0:
        jobs += [("scores_prev.jsonl", k - 1, this_iter),
                 ("scores_iter0.jsonl", k, load_samples(ctx.path("iter_0/eval_sample", "samples.jsonl")))]
    for name, rm_k, samples in jobs:
        rm = stages.load_rm(reward_dir(ctx, rm_k), ctx.cfg.ray)
        values = rm.score(problems, samples, progress=ctx.progress)
        write_jsonl(out / name, [to_dict(Score(s.problem_id, s.sample_id, v, s.language or ""))
                                 for s, v in zip(samples, values)])
    if k == 0:
        shutil.copyfile(out / "scores.jsonl", out / "scores_iter0.jsonl")  # the same samples: score them once


def metrics(ctx: Context, k: int, out: Path) -> None:
    from rewardranker.selftrain.report import iteration_metrics

    write_json(out / "metrics.json", iteration_metrics(ctx.run_dir, k))


def report(ctx: Context, k: int | None, out: Path) -> None:
    from rewardranker.selftrain.report import write_report

    write_report(ctx.run_dir, ctx.cfg, out)


def read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text(encoding="utf-8"))
