"""What the reward CLI commands do (kept here so cli.py stays a thin option parser)."""

from __future__ import annotations

import json
from pathlib import Path

from rewardranker.errors import RewardRankerError
from rewardranker.records import Score, to_dict
from rewardranker.reward.config import RewardConfig
from rewardranker.reward.data import load_labelled
from rewardranker.reward.provenance import add_training_sources, write_scores_meta
from rewardranker.runio import check_output, check_output_folder, write_jsonl, write_report


def run_train(cfg: RewardConfig, samples: Path, verdicts: Path | None, problems: str | None, out: Path,
              cv: int = 0, extra: Path | None = None) -> Path:
    """Train one model on everything, or with cv >= 2 write out-of-fold scores to OUT/cv_scores.jsonl."""
    from rewardranker.reward.hardware import configure_threads
    from rewardranker.reward.train import train_reward_model

    configure_threads()
    check_output_folder(out)
    check_output(out / "cv_scores.jsonl", samples, verdicts, option="--out")
    data = load_labelled(samples, verdicts, problems)
    more = load_extra(extra)
    tests = data.cands.generated_tests or None
    if cv:
        from rewardranker.reward.crossval import cross_validate

        oof = cross_validate(cfg, data.problems, data.cands.samples, data.passed, cv, out,
                             extra=None if more is None else (more.problems, more.cands.samples, more.passed, None),
                             generated_tests=tests)
        path = write_jsonl(out / "cv_scores.jsonl", (to_dict(Score(k[1], k[2], v, k[0])) for k, v in oof.items()))
        write_scores_meta(path, mode="rm", model=None, out_of_fold=True, folds=cv, samples=str(samples))
        return path
    if more is None:
        path = train_reward_model(cfg, data.problems, data.cands.samples, data.passed, out, generated_tests=tests)
    else:
        if cfg.use_execution({s.problem_id for s in data.cands.samples}, tests):
            raise RewardRankerError(f"{extra}: extra training data has no generated tests, so it cannot feed a "
                                    "model with execution features; pass --config with execution_features: off")
        path = train_reward_model(cfg, {**data.problems, **more.problems}, data.cands.samples + more.cands.samples,
                                  {**data.passed, **more.passed}, out)
    add_training_sources(path, [samples, verdicts, extra])
    return path


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
              rm_weight: float | None, tests: Path | None = None, ray: str | None = None,
              bf16: bool | None = None, int8: bool | None = None, runtime: str | None = None) -> list[Score]:
    """Score and write SCORES.jsonl; with `ray`, the model runs on scorer actors and agreement on executor actors."""
    from rewardranker.reward.hardware import configure_threads
    from rewardranker.reward.score import ScoreConfig, score_candidates

    configure_threads()
    check_output(out, samples, model)
    cfg = ScoreConfig(mode=mode, model_dir=model, batch_size=batch_size, rm_weight=rm_weight, bf16=bf16, int8=int8,
                      runtime=runtime)
    data = load_labelled(samples, None, problems, need_labels=False)
    data.cands.problems.update(data.problems)
    if tests is not None:  # asserts from `gen-tests` replace all of the file's own generated_tests
        from rewardranker.generation.testgen import load_generated_tests

        data.cands.generated_tests = load_generated_tests(tests)
    rm = exec_cfg = None
    if ray:
        from rewardranker.execution import ExecutionConfig
        from rewardranker.reward.ray_scoring import RayRewardModel

        rm = RayRewardModel(model, ray) if mode != "agreement" else None
        exec_cfg = ExecutionConfig(ray=ray)
    scores = score_candidates(data.cands, cfg, exec_cfg, rm=rm)
    write_jsonl(out, (to_dict(s) for s in scores))
    write_scores_meta(out, mode=mode, model=None if model is None or mode == "agreement" else str(Path(model).resolve()),
                      samples=str(samples), tests=None if tests is None else str(tests))
    return scores


def read_scores(path: Path, samples: list | None = None) -> dict[tuple[str, str, int], float]:
    """Scores by (language, problem_id, sample_id); scores without a language are matched to `samples` by id."""
    from rewardranker.metrics import align_scores, load_scores

    loaded = load_scores(path)
    if not loaded:
        raise RewardRankerError(f"{path}: file holds no scores")
    return align_scores(loaded, [s.key for s in samples or []])


def run_rerank(samples: Path, scores_file: Path, out: Path, problems: str | None) -> int:
    """Write the top-1 candidate of every problem (ties: first in file order)."""
    from rewardranker.reward.score import top1

    check_output(out, samples, scores_file)
    data = load_labelled(samples, None, problems, need_labels=False)
    scores = [Score(k[1], k[2], v, k[0]) for k, v in read_scores(scores_file, data.cands.samples).items()]
    chosen = top1(data.cands.samples, scores)
    write_jsonl(out, ({**to_dict(s), "score": v} for s, v in chosen))
    return len(chosen)


def run_eval(samples: Path, verdicts: Path | None, problems: str | None, score_files: list[str], out: Path,
             warn=print):
    """Evaluate each MODE=SCORES.jsonl against the labels; writes report.json and two PNG plots into `out`.

    `warn` receives one line per ranker whose reward model was trained on some of these candidates.
    """
    from rewardranker.reward.evaluate import collect, evaluate, plot_pass_at_1, plot_reliability
    from rewardranker.reward.provenance import read_scores_meta, sample_status

    check_output_folder(out)
    data = load_labelled(samples, verdicts, problems)
    scores, paths = {}, {}
    for spec in score_files:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        scores[name], paths[name] = read_scores(Path(path), data.cands.samples), Path(path)
    rows = collect(data.problems, data.cands.samples, data.passed, scores)
    report = evaluate(rows)
    report["in_sample"] = {name: sample_status(read_scores_meta(path), data.problems, data.cands.samples)
                           for name, path in paths.items()}
    for name, st in report["in_sample"].items():
        if st["status"] == "in-sample":
            warn(f"warning: {name}: {st['text']} ({read_scores_meta(paths[name])['model']}): its numbers are "
                 "in-sample and overstate how it ranks new candidates")
    out.mkdir(parents=True, exist_ok=True)
    write_report(out / "report.json", report, "eval", {"samples": samples, "verdicts": verdicts,
                                                       "problems": problems, "scores": score_files})
    plot_pass_at_1(report, out / "pass_at_1.png")
    plot_reliability(rows, list(scores), out / "reliability.png",
                     {name: st["text"] for name, st in report["in_sample"].items()})
    return report


def save_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
