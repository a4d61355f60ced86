"""Draw N samples per problem into the samples JSONL the executor reads; resumable, raw text kept beside it.

Files: `<out>.jsonl` holds {problem_id, sample_id, language, completion, logprobs?} with the completion cut at the
problem's stop tokens; `<out>.raw.jsonl` holds the untruncated text; `<out>.config.json` the settings, so a
rerun with other sampling settings cannot mix two distributions in one file.
"""

from __future__ import annotations

import json
from pathlib import Path

from rewardranker.errors import ConfigError
from rewardranker.generation.backend import Generation, Request, make_backend, sample_seed
from rewardranker.generation.config import GenerationConfig
from rewardranker.problems import index_problems, truncate
from rewardranker.records import Problem
from rewardranker.runio import append_jsonl, read_jsonl_tolerant, write_json, write_jsonl

# settings that change what a sample is; `n`, batch sizes and server fields may change between runs
_IDENTITY = ("backend", "model", "temperature", "top_p", "max_new_tokens", "seed")


def sibling(out_path: Path, suffix: str) -> Path:
    """`runs/x/samples.jsonl` -> `runs/x/samples<suffix>` (e.g. `.raw.jsonl`)."""
    stem = out_path.name.removesuffix(".jsonl")
    return out_path.with_name(stem + suffix)


def sample_problems(cfg: GenerationConfig, problems: list[Problem], out_path: Path, progress: bool = True) -> Path:
    """Write `cfg.n` samples for every problem to `out_path`; a rerun draws only the missing ones.

    Example:
        >>> cfg = GenerationConfig(model="runs/sft", n=8, temperature=0.8)
        >>> sample_problems(cfg, load_problems("procedural:heldout:py"), Path("runs/r1/samples.jsonl"))
    """
    out_path, raw_path = Path(out_path), sibling(Path(out_path), ".raw.jsonl")
    order = {key: i for i, key in enumerate(index_problems(problems))}  # keys (language, problem_id) are unique
    _check_same_settings(cfg, sibling(out_path, ".config.json"))
    done = _clean_partial_run(out_path, raw_path)
    todo = [Request(p.problem_id, sid, p.prompt, tuple(p.stop_tokens), sample_seed(cfg.seed, p.problem_id, sid),
                    p.language)
            for p in problems for sid in range(cfg.n)
            if (p.language, p.problem_id, sid) not in done and ("", p.problem_id, sid) not in done]
    if todo:
        _draw(cfg, todo, out_path, raw_path, progress)
    records = read_jsonl_tolerant(out_path)  # samples of other problems or beyond n (earlier runs) are kept
    records.sort(key=lambda r: (order.get((r.get("language") or "", r["problem_id"]), len(order)),
                                r["problem_id"], r["sample_id"]))
    write_jsonl(out_path, records)  # sorted, and the torn last line of a killed run is gone
    return out_path


def _draw(cfg: GenerationConfig, todo: list[Request], out_path: Path, raw_path: Path, progress: bool) -> None:
    from rich.progress import Progress

    chunk = cfg.batch_size * (cfg.concurrency if cfg.backend == "openai" else 1)
    backend = make_backend(cfg)
    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"sampling {len(todo)} completions", total=len(todo))
            for start in range(0, len(todo), chunk):
                reqs = todo[start:start + chunk]
                gens = backend.generate(reqs)
                # raw first: a crash between the two appends leaves an orphan raw line, removed on resume
                append_jsonl(raw_path, [_raw_record(r, g) for r, g in zip(reqs, gens)])
                append_jsonl(out_path, [_sample_record(r, g) for r, g in zip(reqs, gens)])
                bar.advance(task, len(reqs))
    finally:
        backend.close()


def _sample_record(req: Request, gen: Generation) -> dict:
    rec = {"problem_id": req.problem_id, "sample_id": req.sample_id, "language": req.language,
           "completion": truncate(gen.text, req.stop)}
    if gen.logprobs is not None:
        rec["logprobs"] = gen.logprobs
    return rec


def _raw_record(req: Request, gen: Generation) -> dict:
    return {"problem_id": req.problem_id, "sample_id": req.sample_id, "language": req.language, "raw": gen.text,
            "n_tokens": gen.n_tokens}


def _key(r: dict) -> tuple[str, str, int]:
    """(language, problem_id, sample_id); "" for the language of files written before records carried it."""
    return (r.get("language") or "", r["problem_id"], r["sample_id"])


def _clean_partial_run(out_path: Path, raw_path: Path) -> set[tuple[str, str, int]]:
    """Keys already sampled; rewrites both files without a killed run's torn line or orphan raw records."""
    if not out_path.exists():
        raw_path.unlink(missing_ok=True)
        return set()
    kept = read_jsonl_tolerant(out_path)
    done = {_key(r) for r in kept}
    write_jsonl(out_path, kept)
    write_jsonl(raw_path, [r for r in read_jsonl_tolerant(raw_path) if _key(r) in done])
    return done


def _check_same_settings(cfg: GenerationConfig, path: Path) -> None:
    mine = {k: cfg.to_dict()[k] for k in _IDENTITY}
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        for k in _IDENTITY:
            if before.get(k) != mine[k]:
                raise ConfigError(k, f"= {mine[k]!r} but {path.parent} already holds samples drawn with "
                                     f"{before.get(k)!r}: write to another file or delete it", source=path)
    write_json(path, cfg.to_dict())
