"""What a reward model was trained on, and where a scores file came from, so `eval` can say when it scores
candidates the model has seen (in-sample numbers look better than the model is).

A model folder holds `training_candidates.json`: a content hash of every training candidate (prompt +
completion, so it does not depend on ids or files) and the path and SHA-256 of the files it was read from.
`score` writes `<scores>.meta.json` beside its output naming the mode and the model folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rewardranker.records import Sample
from rewardranker.runio import content_hash, write_json

TRAINING_FILE = "training_candidates.json"


def candidate_hash(prompt: str, completion: str) -> str:
    """A 64-bit content hash of the program text a reward model reads (prompt + completion)."""
    return content_hash(prompt, completion)[:16]


def candidate_hashes(problems: dict, samples: list[Sample]) -> list[str]:
    """The hash of every sample, in order (a sample's own prompt wins over its problem's, found by
    (language, problem_id) or by problem_id)."""
    def prompt(s: Sample) -> str:
        key = getattr(s, "problem_key", s.problem_id)
        return s.prompt or (problems[key] if key in problems else problems[s.problem_id]).prompt

    return [candidate_hash(prompt(s), s.completion) for s in samples]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_training_record(model_dir: str | Path, problems: dict, samples: list[Sample]) -> Path:
    """Record the training candidates (hashes) in the model folder."""
    hashes = sorted(set(candidate_hashes(problems, samples)))
    return write_json(Path(model_dir) / TRAINING_FILE, {"format": 1, "candidates": len(samples),
                                                        "distinct": len(hashes), "sources": [], "hashes": hashes})


def add_training_sources(model_dir: str | Path, files: list[Path | None]) -> None:
    """Add the path and SHA-256 of the files the training data was read from (folders: their files)."""
    path = Path(model_dir) / TRAINING_FILE
    if not path.exists():
        return
    record = json.loads(path.read_text(encoding="utf-8"))
    for f in files:
        if f is None:
            continue
        for one in sorted(Path(f).glob("*.jsonl")) if Path(f).is_dir() else [Path(f)]:
            if one.is_file():
                record["sources"].append({"path": str(one.resolve()), "sha256": file_sha256(one)})
    write_json(path, record)


def training_hashes(model_dir: str | Path) -> set[str] | None:
    """The training-candidate hashes of a model folder, or None when it has no record (older models)."""
    path = Path(model_dir) / TRAINING_FILE
    if not path.exists():
        return None
    return set(json.loads(path.read_text(encoding="utf-8")).get("hashes", []))


def meta_path(scores_path: str | Path) -> Path:
    """`runs/x/scores.jsonl` -> `runs/x/scores.meta.json`."""
    p = Path(scores_path)
    return p.with_name(p.name.removesuffix(".jsonl") + ".meta.json")


def write_scores_meta(scores_path: str | Path, **meta) -> Path:
    return write_json(meta_path(scores_path), meta)


def read_scores_meta(scores_path: str | Path) -> dict | None:
    path = meta_path(scores_path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def sample_status(meta: dict | None, problems: dict, samples: list[Sample]) -> dict:
    """Whether one ranker's scores are in-sample for these candidates: {"status", "text", counts}.

    status: "in-sample" (the reward model was trained on some of them), "out-of-sample", "out-of-fold",
    "no training" (agreement), or "unknown" (no metadata, or a model folder without a training record).
    """
    if meta is None:
        return {"status": "unknown", "text": "unknown (no .meta.json beside the scores)"}
    if meta.get("out_of_fold"):
        return {"status": "out-of-fold", "text": "out-of-fold (cross-validation by problem)"}
    if not meta.get("model"):
        return {"status": "no training", "text": "no trained model"}
    seen = training_hashes(meta["model"])
    if seen is None:
        return {"status": "unknown", "text": f"unknown ({meta['model']} records no training candidates)"}
    mine = candidate_hashes(problems, samples)
    n_in = sum(h in seen for h in mine)
    if n_in:
        return {"status": "in-sample", "trained_on": n_in, "candidates": len(mine),
                "text": f"IN-SAMPLE: the reward model was trained on {n_in} of {len(mine)} candidates"}
    return {"status": "out-of-sample", "trained_on": 0, "candidates": len(mine),
            "text": "out-of-sample (none of these candidates was in the reward model's training data)"}
