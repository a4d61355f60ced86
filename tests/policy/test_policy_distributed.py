"""SFT and PPO under torchrun with 2 CPU processes (gloo): the path `accelerate launch` takes on GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardranker.runio import read_jsonl

SCRIPT = '''
import sys, torch
torch.set_num_threads(1)
from pathlib import Path
from rewardranker.policy import PPOConfig, SFTConfig, examples_from_problems, run_ppo, run_sft
from rewardranker.records import Problem
probs = [Problem(f"toy/{i}", "py", f"def f{i}(x):\\n", "", ("\\ndef",), canonical_solution=f"    return x + {i}\\n")
         for i in range(8)]
stage, policy, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
if stage == "sft":
    run_sft(SFTConfig(max_steps=4, batch_size=2, logging_steps=1), policy, examples_from_problems(probs), out)
else:
    from accelerate import Accelerator
    assert Accelerator(cpu=True).num_processes == 2  # as in _setup: the update is data-parallel (DDP)
    run_ppo(PPOConfig(steps=2, batch_size=2, max_new_tokens=8), policy, lambda p, c: [float(len(x)) for x in c],
            probs, out, progress=False)
'''


@pytest.mark.slow
def test_sft_and_ppo_run_under_torchrun_with_two_processes(tiny_policy, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for stage, policy in (("sft", tiny_policy), ("ppo", tmp_path / "sft")):  # two commands, as a user runs them
        res = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), stage, str(policy),
                              str(tmp_path / stage)], capture_output=True, text=True, timeout=600, env=env, check=False)
        assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "sft" / "model.safetensors").exists()
    log = read_jsonl(tmp_path / "ppo" / "ppo_log.jsonl")
    assert [r["step"] for r in log] == [1, 2]  # one writer, not one per process
    assert (tmp_path / "ppo" / "policy" / "model.safetensors").exists()
