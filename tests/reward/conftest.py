"""Fixtures for the reward tests: tiny GPT-2 / Llama backbones built from configs (nothing downloaded)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rewardranker.records import Problem, Sample


def _tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|pad|>", model_max_length=512)


def toy_task(n_problems: int = 12, n_good: int = 3, n_bad: int = 3, seed: int = 0):
    """Problems whose passing candidates add and failing ones subtract: learnable from the text alone."""
    rng = random.Random(seed)
    problems, samples, passed = {}, [], {}
    for p in range(n_problems):
        pid = f"toy/{p}"
        problems[pid] = Problem(pid, "py", f"def f{p}(x):\n", "assert True\n", entry_point=f"f{p}")
        bodies = [(f"    return x + {rng.randint(1, 9)}\n", True) for _ in range(n_good)]
        bodies += [(f"    return x - {rng.randint(1, 9)}\n", False) for _ in range(n_bad)]
        rng.shuffle(bodies)
        for i, (body, ok) in enumerate(bodies):
            samples.append(Sample(pid, i, body, language="py"))
            passed[("py", pid, i)] = ok
    return problems, samples, passed


def _save_tiny(kind: str, folder: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    problems, samples, _ = toy_task()
    tok = _tokenizer([p.prompt for p in problems.values()] + [s.completion for s in samples] * 5)
    common = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=256, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                             num_key_value_heads=2, intermediate_size=128,
                                             max_position_embeddings=256, **common))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return _save_tiny("gpt2", tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return _save_tiny("llama", tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch):
    """Each test gets its own verdict and encoding caches (subprocesses inherit the variable)."""
    monkeypatch.setenv("REWARDRANKER_CACHE", str(tmp_path / "cache" / "verdicts.sqlite"))
