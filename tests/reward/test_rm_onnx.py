"""Issue 12: frozen backbones on ONNX Runtime (same outputs as torch, exported once, torch when it cannot run)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import toy_task

from rewardranker.reward import RewardConfig, RewardModel, hardware, onnx_backend, train_reward_model
from rewardranker.reward.encoder import EncodingCache, FrozenEncoder

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_bert():
    """A 2-layer BERT seq-cls model built from a config (the MiniLM architecture, small): ORT's BERT fusions apply."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=300, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=96, max_position_embeddings=128, num_labels=1, pad_token_id=0)
    return BertForSequenceClassification(cfg).eval()


def _programs(n: int = 10, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[101, *rng.integers(5, 300, size=int(rng.integers(1, 60))).tolist(), 102] for _ in range(n)]


def test_onnx_runtime_matches_torch_and_ranks_the_same(tiny_bert, tmp_path):
    from rewardranker.reward.features import _standardise

    ids = _programs(12)
    torch_rows = FrozenEncoder(tiny_bert, 0, batch_size=5, cache=False).encode(ids)
    enc = FrozenEncoder(tiny_bert, 0, batch_size=5, cache=EncodingCache(tmp_path / "encodings.sqlite"), runtime="onnx")
    assert enc.runtime == "onnx" and enc.onnx.exported
    assert enc.onnx.path.parent == tmp_path / "onnx" and enc.onnx.path.name.startswith(enc.fingerprint)
    onnx_rows = enc.encode(ids)
    assert onnx_rows.shape == torch_rows.shape
    assert np.abs(onnx_rows - torch_rows).max() < 1e-3  # embeddings and head inputs alike
    h = enc.hidden  # the consensus feature (mean similarity to the siblings) ranks the candidates identically
    sims = [_standardise((e @ e.T - np.eye(len(e))).sum(1), True) for e in (torch_rows[:, :h], onnx_rows[:, :h])]
    assert list(np.argsort(sims[0])) == list(np.argsort(sims[1]))
    other = FrozenEncoder(tiny_bert, 0, cache=False)
    assert enc.key(ids[0]) != other.key(ids[0])  # the runtime is part of the encoding cache key


def test_the_export_is_reused_by_the_next_encoder(tiny_bert, tmp_path, monkeypatch):
    cache = tmp_path / "encodings.sqlite"
    first = FrozenEncoder(tiny_bert, 0, cache=EncodingCache(cache), runtime="onnx")
    assert first.onnx.exported and first.onnx.path.exists()
    assert not list(first.onnx.path.parent.glob("*.tmp"))  # written through a temporary file + rename

    def no_export(*_a, **_k):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend, "export", no_export)
    again = FrozenEncoder(tiny_bert, 0, cache=EncodingCache(cache), runtime="onnx")
    assert again.runtime == "onnx" and not again.onnx.exported
    ids = _programs(4, seed=1)
    assert np.allclose(again.encode(ids), first.encode(ids), atol=1e-6)


def test_int8_on_onnx_runtime_is_its_own_file_and_key(tiny_bert, tmp_path):
    cache = EncodingCache(tmp_path / "encodings.sqlite")
    fp32 = FrozenEncoder(tiny_bert, 0, cache=cache, runtime="onnx")
    int8 = FrozenEncoder(tiny_bert, 0, int8=True, cache=cache, runtime="onnx")
    assert int8.runtime == "onnx" and int8.onnx.path != fp32.onnx.path and int8.key([1, 2]) != fp32.key([1, 2])
    ids = _programs(6, seed=2)
    assert np.abs(int8.encode(ids) - fp32.encode(ids)).max() < 0.5  # quantised, still the same model


def test_auto_runtime_falls_back_to_torch_when_onnxruntime_cannot_be_imported(tiny_bert, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    monkeypatch.setattr(hardware, "_LOGGED", set())
    assert hardware.resolve_runtime("auto", "cpu", frozen=True) == "torch"
    assert "reward model runtime: torch" in capsys.readouterr().err  # one line saying why
    enc = FrozenEncoder(tiny_bert, 0, cache=False, runtime="onnx")
    assert enc.runtime == "torch" and enc.onnx is None
    assert "onnxruntime cannot be imported" in capsys.readouterr().err
    assert enc.encode(_programs(3)).shape == (3, 2 * enc.hidden)


def test_auto_runtime_is_onnx_only_for_a_frozen_backbone_on_cpu(monkeypatch):
    assert hardware.resolve_runtime("auto", "cpu", frozen=True) == "onnx"
    assert hardware.resolve_runtime("auto", "cpu", frozen=False) == "torch"
    assert hardware.resolve_runtime("auto", "cuda", frozen=True) == "torch"
    assert hardware.resolve_runtime("auto", "cpu", frozen=True, bf16=True) == "torch"  # forced bf16 wins
    assert hardware.resolve_runtime("auto", "cpu", frozen=True, bf16="auto") == "onnx"
    assert hardware.resolve_runtime("torch", "cpu", frozen=True) == "torch"
    with pytest.raises(Exception, match="runtime"):
        RewardConfig(runtime="tensorrt")


def test_a_failed_export_falls_back_to_torch_with_the_reason(tiny_bert, monkeypatch, capsys):
    def broken(*_a, **_k):
        raise RuntimeError("exporter says no")

    monkeypatch.setattr(onnx_backend, "export", broken)
    enc = FrozenEncoder(tiny_bert, 0, cache=False, runtime="onnx")
    assert enc.runtime == "torch" and enc.precision == "fp32"
    assert "ONNX export/session failed: RuntimeError: exporter says no" in capsys.readouterr().err


def test_frozen_decoder_reward_model_on_onnx_scores_like_torch(tiny_gpt2, tmp_path):
    problems, samples, passed = toy_task(n_problems=3)
    cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", max_steps=5, train_top_layers=0,
                       bf16=False, text_head="on", runtime="onnx")
    out = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False)
    onnx_rm = RewardModel.load(out)
    assert onnx_rm.encoder.runtime == "onnx"
    torch_rm = RewardModel.load(out, runtime="torch")
    assert torch_rm.encoder.runtime == "torch"
    a = onnx_rm.score(problems, samples, progress=False)
    b = torch_rm.score(problems, samples, progress=False)
    assert np.allclose(a, b, atol=1e-4)


def test_gpt2_backbone_frozen_with_empty_completions_does_not_crash(tiny_gpt2, tmp_path):
    """train-rm --backbone <GPT-2> --train-top-layers 0 crashed in head_inputs: an empty completion has no tokens
    under a tokenizer without special tokens, and a batch of only such rows had width 0."""
    from rewardranker.records import Sample

    problems, samples, passed = toy_task(n_problems=3)
    for pid in problems:
        for j in (10, 11):
            samples.append(Sample(pid, j, "", language="py"))
            passed[("py", pid, j)] = False
    for runtime in ("torch", "onnx"):
        cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", max_steps=3,
                           train_top_layers=0, bf16=False, text_head="on", score_batch_size=2, runtime=runtime)
        rm = RewardModel.load(train_reward_model(cfg, problems, samples, passed, tmp_path / runtime, progress=False))
        ids = rm.tokenize(problems, samples)
        assert all(ids) and rm.head_inputs([ids[-1]]).shape == (1, rm.encoder.hidden)  # a batch of one empty
        scores = rm.score(problems, samples, progress=False)
        assert len(scores) == len(samples) and np.isfinite(scores).all()
    trained = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", max_steps=2, bf16=False)
    rm = RewardModel.load(train_reward_model(trained, problems, samples, passed, tmp_path / "full", progress=False))
    empties = [s for s in samples if not s.completion]
    assert np.isfinite(rm.score_tokens(rm.tokenize(problems, empties), np.zeros((len(empties), 2)), 2, False)).all()
