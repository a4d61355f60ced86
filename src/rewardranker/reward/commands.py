"""What the reward CLI commands do (kept here so cli.py stays a thin option parser)."""

from __future__ import annotations

import json
from pathlib import Path

from rewardranker.errors import RewardRankerError
from rewardranker.records import Score, to_dict
from rewardranker.reward.config import RewardConfig
from rewardranker.reward.data import load_labelled
from rewardranker.runio import write_json, write_jsonl


def run_train(cfg: RewardConfig, samples: Path, verdicts: Path | None, problems: str | None, out: Path,
              cv: int = 0, extra: Path | None = None) -> Path:
    """Train one model on everything, or with cv >= 2 write out-of-fold scores to OUT/cv_scores.jsonl."""
    from rewardranker.reward.hardware import configure_threads
    from rewardranker.reward.train import train_reward_model

    configure_threads()
    data = load_labelled(samples, verdicts, problems)
    more = load_extra(extra)
    tests = data.cands.generated_tests or None
    if cv:
        from rewardranker.reward.crossval import cross_validate

        oof = cross_validate(cfg, data.problems, data.cands.samples, data.passed, cv, out,
                             extra=None if more is None else (more.problems, more.cands.samples, more.passed, None),
                             generated_tests=tests)
        return write_jsonl(out / "cv_scores.jsonl", (to_dict(Score(k[0], k[1], v)) for k, v in oof.items()))
    if more is None:
        return train_reward_model(cfg, data.problems, data.cands.samples, data.passed, out, generated_tests=tests)
    if cfg.use_execution({s.problem_id for s in data.cands.samples}, tests):
        raise RewardRankerError(f"{extra}: extra training data has no generated tests, so it cannot feed a model "
                                "with execution features; pass --config with execution_features: off")
    return train_reward_model(cfg, {**data.problems, **more.problems}, data.cands.samples + more.cands.samples,
                              {**data.passed, **more.passed}, out)


def load_extra(folder: Path | None):
    """A `build-rm-data` folder (problems.jsonl, samples.jsonl, verdicts.jsonl), or None."""
    if folder is None:
        return None
    for name in ("problems.jsonl", "samples.jsonl", "verdicts.jsonl"):
        if not (Path(folder) / name).exists():
            raise RewardRankerError(f"{folder}: {name} is missing; build the folder with `rewardranker build-rm-data`")
    return load_labelled(Path(folder) / "samples.jsonl", Path(folder) / "verdicts.jsonl",
                         str(Path(folder) / "problems.jsonl"))


def run_score(samples: Path, out: Path, mode: str, model: Path | None, problems: str | None, batch_size: int,
              rm_weight: float | None, bf16: bool | None = None, int8: bool | None = None) -> list[Score]:
    from rewardranker.reward.hardware import configure_threads
    from rewardranker.reward.score import ScoreConfig, score_candidates

    configure_threads()
    cfg = ScoreConfig(mode=mode, model_dir=model, batch_size=batch_size, rm_weight=rm_weight, bf16=bf16, int8=int8)
    data = load_labelled(samples, None, problems, need_labels=False)
    data.cands.problems.update(data.problems)
    scores = score_candidates(data.cands, cfg)
    write_jsonl(out, (to_dict(s) for s in scores))
    return scores


def read_scores(path: Path) -> dict[tuple[str, int], float]:
    from rewardranker.metrics import load_scores

    scores = {(s.problem_id, s.sample_id): float(s.score) for s in load_scores(path)}
    if not scores:
        raise RewardRankerError(f"{path}: file holds no scores")
    return scores


def run_rerank(samples: Path, scores_file: Path, out: Path, problems: str | None) -> int:
    """Write the top-1 candidate of every problem (ties: first in file order)."""
    from rewardranker.reward.score import top1

    data = load_labelled(samples, None, problems, need_labels=False)
    scores = [Score(k[0], k[1], v) for k, v in read_scores(scores_file).items()]
    chosen = top1(data.cands.samples, scores)
    write_jsonl(out, ({**to_dict(s), "score": v} for s, v in chosen))
    return len(chosen)


def run_eval(samples: Path, verdicts: Path | None, problems: str | None, score_files: list[str], out: Path):
    """Evaluate each MODE=SCORES.jsonl against the labels; writes report.json and two PNG plots into `out`."""
    from rewardranker.reward.evaluate import collect, evaluate, plot_pass_at_1, plot_reliability

    data = load_labelled(samples, verdicts, problems)
    scores = {}
    for spec in score_files:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        scores[name] = read_scores(Path(path))
    rows = collect(data.problems, data.cands.samples, data.passed, scores)
    report = evaluate(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", report)
    plot_pass_at_1(report, out / "pass_at_1.png")
    plot_reliability(rows, list(scores), out / "reliability.png")
    return report


def save_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
