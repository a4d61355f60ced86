"""Issue 12: precision chosen by the hardware, progress off a terminal, each distinct program encoded once."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import toy_task

from rewardranker.reward import RewardConfig, RewardModel, hardware, train_reward_model
from rewardranker.reward.encoder import EncodingCache, FrozenEncoder
from rewardranker.reward.progress import Progress


@pytest.fixture
def avx2_only_cpu(monkeypatch):
    """Pretend to be an AVX2-only CPU (like the AMD EPYC of issue 12), whatever the test machine is."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx", "avx2", "fma", "f16c"}))
    monkeypatch.setattr(hardware, "torch_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(hardware, "_LOGGED", set())


def test_auto_precision_is_fp32_on_a_cpu_without_native_bf16(avx2_only_cpu, capsys):
    assert hardware.resolve_bf16("auto", "cpu") is False
    assert hardware.resolve_bf16("auto", "cpu") is False
    err = capsys.readouterr().err
    assert err.count("reward model precision: fp32") == 1 and "no avx512_bf16" in err  # logged once, with why
    assert hardware.resolve_bf16(True, "cpu") is True  # an explicit choice wins
    rm = RewardModel.build(RewardConfig(consensus="none"))
    assert rm.cfg.bf16 == "auto" and rm.bf16 is False and rm.precision == "fp32"
    assert rm.encoder.bf16 is False


def test_auto_precision_is_bf16_where_the_cpu_has_it_natively(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    monkeypatch.setattr(hardware, "torch_cpu_capability", lambda: "AVX512")
    assert hardware.resolve_bf16("auto", "cpu", log=False) is True
    monkeypatch.setattr(hardware, "torch_cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert hardware.resolve_bf16("auto", "cpu", log=False) is False
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16", "amx_tile"}))
    monkeypatch.setattr(hardware, "torch_cpu_capability", lambda: "AVX512")
    assert hardware.resolve_bf16("auto", "cpu", log=False) is True


def test_consensus_embedder_and_score_honour_the_precision(avx2_only_cpu, tiny_gpt2, tmp_path):
    from rewardranker.reward.model import get_embedder

    assert get_embedder("minilm", "auto").encoder.bf16 is False
    assert get_embedder("minilm", True).encoder.bf16 is True
    problems, samples, passed = toy_task(n_problems=3)
    cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", max_steps=2, train_top_layers=0)
    out = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False)
    head = json.loads((out / "reward_head.json").read_text())
    assert head["config"]["bf16"] == "auto" and head["precision"]["trained_with"] == "fp32"
    assert RewardModel.load(out).bf16 is False
    assert RewardModel.load(out, bf16=True).bf16 is True  # `score --bf16` overrides the saved setting


def test_frozen_default_has_no_text_head_and_scores_from_features_alone(tiny_gpt2, tmp_path):
    problems, samples, passed = toy_task(n_problems=3)
    cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", max_steps=5, train_top_layers=0,
                       bf16=False)
    assert cfg.frozen and not cfg.uses_text_head and RewardConfig(backbone=str(tiny_gpt2)).uses_text_head
    rm = RewardModel.load(train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False))
    fast = rm.score(problems, samples, progress=False)
    full = rm.score_tokens(rm.tokenize(problems, samples), rm.features(problems, samples), 4, False)
    assert np.allclose(fast, full, atol=1e-5) and len(set(np.round(fast, 6))) > 1


def test_bad_precision_settings_are_config_errors():
    from rewardranker.errors import ConfigError

    with pytest.raises(ConfigError, match="text_head"):
        RewardConfig(text_head="off", train_top_layers=-1)
    with pytest.raises(ConfigError, match="bf16"):
        RewardConfig(bf16="fast")
    with pytest.raises(ConfigError, match="execution_features"):
        RewardConfig(execution_features="maybe")


def test_plain_progress_lines_off_a_terminal_show_count_rate_and_eta():
    stream = io.StringIO()  # not a TTY, like CI logs and nohup
    with Progress("encoding programs", 10, True, unit="programs", stream=stream, interval_s=0.0) as bar:
        for _ in range(4):
            bar.advance()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5  # one per advance at interval 0, and a last one
    assert lines[1].startswith("encoding programs: 2/10 programs (20%)")
    assert "programs/s" in lines[1] and "ETA" in lines[1]
    assert lines[-1].endswith("- done")
    quiet = io.StringIO()
    with Progress("x", 10, True, stream=quiet, interval_s=3600) as bar:
        bar.advance(5)
    assert len(quiet.getvalue().splitlines()) == 1  # a steady interval, not a line per item


def test_each_distinct_program_is_encoded_once_within_and_across_runs(tiny_gpt2, tmp_path):
    from rewardranker.reward.model import load_backbone

    model, tok = load_backbone(str(tiny_gpt2))
    texts = ["def f(x): return x + 1", "def f(x): return x - 1", "def f(x): return x + 1", "x = 1"]
    ids = tok(texts)["input_ids"]
    cache_path = tmp_path / "enc.sqlite"
    first = FrozenEncoder(model, tok.pad_token_id, batch_size=2, cache=EncodingCache(cache_path))
    a = first.encode(ids)
    assert first.stats == {"encoded": 3, "from_cache": 0}  # the duplicate ran once
    assert np.array_equal(a[0], a[2])
    again = FrozenEncoder(model, tok.pad_token_id, batch_size=2, cache=EncodingCache(cache_path))
    b = again.encode(ids)  # a new run: everything from the disk cache
    assert again.stats == {"encoded": 0, "from_cache": 3}
    assert np.array_equal(a, b)
    alone = FrozenEncoder(model, tok.pad_token_id, batch_size=1, cache=False).encode([ids[1]])
    assert np.allclose(alone[0], a[1], atol=1e-5)  # padding in a batch does not change a program's encoding
    other = FrozenEncoder(model, tok.pad_token_id, bf16=True, cache=EncodingCache(cache_path))
    assert other.key(ids[0]) != first.key(ids[0])  # precision is part of the key


def test_frozen_scores_use_the_cache_and_match_a_full_forward_pass(tiny_gpt2, tmp_path):
    problems, samples, passed = toy_task(n_problems=3)
    cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="tfidf", max_steps=5, train_top_layers=0,
                       bf16=False, text_head="on")
    out = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False)
    rm = RewardModel.load(out)
    cached = rm.score(problems, samples, progress=False)
    assert rm.encoder.stats["encoded"] == 0  # training already encoded every program
    full = rm.score_tokens(rm.tokenize(problems, samples), rm.features(problems, samples), 4, False)
    assert np.allclose(cached, full, atol=1e-4)


def _train_cli(args: list[str], env_cache, **kw):
    import os
    import subprocess
    import sys

    env = {**os.environ, "REWARDRANKER_CACHE": str(env_cache), "REWARDRANKER_PROGRESS_INTERVAL": "0.5",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rewardranker", "train-rm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _kill_when(proc, ready, timeout_s: float = 600.0) -> None:
    import signal
    import time

    end = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < end, "nothing to resume from appeared in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _many_candidates(path, n_problems: int, per_problem: int):
    rows = []
    for p in range(n_problems):
        comps = [f"    y = x * {i} + {p}\n" + "    z = y - 1\n" * (i % 7) + f"    return z if z > {i} else y\n"
                 for i in range(per_problem)]
        rows.append({"task_id": f"T/{p}", "prompt": f"def f{p}(x):\n", "entry_point": f"f{p}", "completions": comps,
                     "reference_passed": [i % 3 == 0 for i in range(per_problem)]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_train_rm_killed_during_training_resumes_from_its_checkpoint(tiny_gpt2, tmp_path):
    data = _many_candidates(tmp_path / "cands.jsonl", 6, 12)
    cfg = tmp_path / "rm.yaml"
    cfg.write_text(f"backbone: {tiny_gpt2}\nmax_length: 48\nconsensus: tfidf\nbf16: false\ncheckpoint_every: 5\n")
    args = ["--samples", str(data), "--out", str(tmp_path / "rm"), "--config", str(cfg), "--max-steps", "300"]
    proc = _train_cli(args, tmp_path / "cache" / "v.sqlite")
    _kill_when(proc, lambda: any((tmp_path / "rm" / "trainer").glob("checkpoint-*/trainer_state.json")))
    done = _train_cli(args, tmp_path / "cache" / "v.sqlite")
    _, err = done.communicate(timeout=900)
    assert done.returncode == 0, err[-2000:]
    assert "resuming from" in err and "checkpoint-" in err
    assert "train-rm: 300/300 steps" in err  # plain progress lines, since stderr is a pipe
    assert (tmp_path / "rm" / "reward_head.json").exists() and not (tmp_path / "rm" / "trainer").exists()


@pytest.mark.slow
def test_train_rm_killed_while_encoding_keeps_what_it_encoded(tmp_path):
    import re
    import sqlite3

    data = _many_candidates(tmp_path / "cands.jsonl", 6, 30)
    cache = tmp_path / "cache" / "v.sqlite"
    enc = cache.parent / "encodings.sqlite"
    args = ["--samples", str(data), "--out", str(tmp_path / "rm"), "--no-bf16"]

    def some_rows() -> bool:
        if not enc.exists():
            return False
        try:
            return sqlite3.connect(enc).execute("SELECT COUNT(*) FROM encodings").fetchone()[0] > 0
        except sqlite3.OperationalError:
            return False

    _kill_when(_train_cli(args, cache), some_rows)
    done = _train_cli(args, cache)
    _, err = done.communicate(timeout=900)
    assert done.returncode == 0, err[-2000:]
    todo = re.search(r"consensus embeddings: \d+/(\d+) programs", err)  # plain progress lines
    assert todo and 0 < int(todo.group(1)) < 6 * 30, err[-2000:]  # the killed run's encodings were kept



def _agreement_task(n_problems: int, offset: int = 0):
    """Right candidates agree on the generated asserts; wrong ones fail them in different ways."""
    from rewardranker.records import Problem, Sample

    problems, samples, passed, tests = {}, [], {}, {}
    for p in range(offset, offset + n_problems):
        pid = f"agr/{p}"
        problems[pid] = Problem(pid, "py", "def f(x):\n", "", entry_point="f")
        bodies = [(f"    return x + {p}\n", True), (f"    return {p} + x\n", True), (f"    return (x + {p})\n", True),
                  (f"    return x - {p}\n", False), (f"    return x * {p + 2}\n", False),
                  (f"    return x + {p + 1}\n", False)]
        for i, (body, ok) in enumerate(bodies):
            samples.append(Sample(pid, i, body, language="py"))
            passed[("py", pid, i)] = ok
        tests[pid] = [f"assert f({x}) == {x + p}" for x in (1, 2, 5)]
    return problems, samples, passed, tests


def test_reward_model_reads_execution_features_when_generated_tests_exist(tiny_gpt2, tmp_path):
    from rewardranker.errors import RewardRankerError
    from rewardranker.execution import ExecutionConfig
    from rewardranker.metrics import ranked_pass_at_1

    problems, samples, passed, tests = _agreement_task(6)
    exec_cfg = ExecutionConfig(workers=1, cache_path=tmp_path / "verdicts.sqlite")
    cfg = RewardConfig(backbone=str(tiny_gpt2), max_length=32, consensus="none", train_top_layers=0, bf16=False,
                       max_steps=300)
    out = train_reward_model(cfg, problems, samples, passed, tmp_path / "rm", progress=False,
                             generated_tests=tests, exec_cfg=exec_cfg)
    rm = RewardModel.load(out)
    assert rm.uses_execution and "agr_soft" in rm.feature_names
    held_problems, held_samples, held_passed, held_tests = _agreement_task(4, offset=10)
    scores = rm.score(held_problems, held_samples, progress=False, generated_tests=held_tests, exec_cfg=exec_cfg)
    for p in range(4):
        idx = [i for i, s in enumerate(held_samples) if s.problem_id == f"agr/{p + 10}"]
        assert ranked_pass_at_1([scores[i] for i in idx], [held_passed[held_samples[i].key] for i in idx]) == 1
    with pytest.raises(RewardRankerError, match="needs generated_tests"):
        rm.score(held_problems, held_samples, progress=False)
    off = RewardConfig(**{**cfg.to_dict(), "execution_features": "off"})
    plain = train_reward_model(off, problems, samples, passed, tmp_path / "plain", progress=False,
                               generated_tests=tests, exec_cfg=exec_cfg)
    assert not RewardModel.load(plain).uses_execution


def test_execution_features_are_computed_within_each_language_of_a_problem_id():
    from rewardranker.records import Sample
    from rewardranker.reward.features import execution_features

    # the same problem id in two languages: two problems, each centred on its own candidates
    samples = [Sample("HumanEval/0", i, "", language=lang) for lang in ("py", "js") for i in range(2)]
    sets = [frozenset({0, 1}), frozenset(), frozenset({0}), frozenset({0})]
    feats = execution_features(samples, sets)
    assert feats[0, 0] > 0 > feats[1, 0]  # py: the candidate passing both asserts is above the one passing none
    assert (feats[2:] == 0).all()  # js: both candidates behave alike, so nothing distinguishes them
