"""Per-candidate features that depend on the candidate's siblings (consensus) or are free to compute.

A reward model that sees only one program's text has to learn correctness from few problems; how typical a
candidate is among the N samples for its problem is a strong label-free signal (reranking-facts.md), so the
reward model adds a learned linear function of these features to its text score.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rewardranker.records import Problem, Sample
from rewardranker.reward.encoding import encode_whitespace

# Measured on the dev file (5-fold CV, ranked pass@1): mean similarity alone 37.8, + compiles 37.8; adding
# top-10 similarity, duplicate fraction or length lowered top-1 (36.6, 36.6, 31.7), so they are not used.
FEATURE_NAMES = ("sim_mean", "compiles")
Embedder = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised rows


def compiles(problem: Problem, sample: Sample) -> bool:
    """Python only: does prompt + completion parse? (other languages: True, i.e. no information)."""
    if problem.language != "py":
        return True
    try:
        compile((sample.prompt or problem.prompt) + sample.completion, "<candidate>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _standardise(x: np.ndarray, scale: bool) -> np.ndarray:
    x = x - x.mean()
    if scale:
        std = x.std()
        x = x / std if std > 1e-6 else x * 0.0
    return x


def _group_features(problem: Problem, group: list[Sample], emb: np.ndarray | None) -> np.ndarray:
    n = len(group)
    feats = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    if n < 2:
        return feats  # a lone candidate has no siblings: every feature is 0 (no preference)
    ok = np.array([1.0 if compiles(problem, s) else 0.0 for s in group])
    if emb is not None:
        sims = emb @ emb.T
        np.fill_diagonal(sims, 0.0)
        feats[:, 0] = _standardise(sims.sum(axis=1) / (n - 1), True)
    feats[:, 1] = _standardise(ok, False)
    return feats


def tfidf_embedder(texts: list[str]) -> np.ndarray:
    """Character 3-5-gram TF-IDF vectors (fit on the texts given: one problem's candidates)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not any(t.strip() for t in texts):
        return np.zeros((len(texts), 1), dtype=np.float32)
    m = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(texts)
    return np.asarray(m.todense(), dtype=np.float32)


def candidate_features(problems: dict[str, Problem], samples: list[Sample], embed: Embedder | None,
                       progress: bool = False) -> np.ndarray:
    """Feature matrix [len(samples), len(FEATURE_NAMES)], rows in the order of `samples`.

    Features are centred (and similarity/length scaled) within each problem, so only a candidate's standing
    among its siblings counts. `embed` maps whitespace-visible completions to unit vectors; None drops the
    similarity features.
    """
    from rewardranker.reward.progress import track

    groups: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.problem_key, []).append(i)
    out = np.zeros((len(samples), len(FEATURE_NAMES)), dtype=np.float32)
    if embed is not None and hasattr(embed, "prefetch"):  # one length-sorted pass over all distinct programs
        embed.prefetch([encode_whitespace(samples[i].completion) for idx in groups.values() if len(idx) > 1
                        for i in idx], progress)
    for pid in track(list(groups), "consensus features", progress and not hasattr(embed, "prefetch"),
                     unit="problems"):
        idx = groups[pid]
        group = [samples[i] for i in idx]
        emb = None
        if embed is not None and len(group) > 1:
            emb = embed([encode_whitespace(s.completion) for s in group])
        out[idx] = _group_features(problems[pid], group, emb)
    return out


# What executing a candidate on the model-written asserts says about it, for candidate sets that carry
# `generated_tests`: log(1 + soft agreement) and the fraction of the problem's candidates in its exact agreement
# group, centred within the problem. Chosen by 5-fold CV on the dev file (ranked pass@1 of the reward model, mean
# of 3 seeds): + soft agreement 46.8, + group fraction 47.6; adding log(1 + CodeT score) (43.1) or the fraction
# of asserts passed (43.9) lowered it, so they are not used.
EXEC_FEATURE_NAMES = ("agr_soft", "group_frac")


def execution_features(samples: list[Sample], sets: list[frozenset[int]]) -> np.ndarray:
    """[len(samples), len(EXEC_FEATURE_NAMES)] from the set of generated asserts each candidate passes (its
    agreement group is the candidates passing exactly the same asserts)."""
    from rewardranker.reward.agreement import soft_agreement

    groups: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.problem_key, []).append(i)
    out = np.zeros((len(samples), len(EXEC_FEATURE_NAMES)), dtype=np.float32)
    for idx in groups.values():
        group = [sets[i] for i in idx]
        n = len(group)
        sizes: dict[frozenset[int], int] = {}
        for g in group:
            sizes[g] = sizes.get(g, 0) + 1
        cols = np.column_stack([np.log1p(soft_agreement(group)), [sizes[g] / n for g in group]])
        out[idx] = cols - cols.mean(axis=0) if n > 1 else 0.0
    return out
