"""PPO for the generator against a reward computed on decoded text: KL penalty to the frozen reference policy,
a value head on the policy's last hidden state, clipped policy and value losses, GAE.

We write PPO ourselves because TRL removed its PPOTrainer (trl >= 1.13) and its old one fed the policy's token
ids straight to a same-vocabulary reward model, while ours decodes completions so the RM keeps its own tokenizer.
Layout: config, the model wrapper, rollout, one iteration, the resumable loop, rewards; losses in losses.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.generation.config import PRECISIONS
from rewardranker.policy.losses import (
    entropy,
    gae,
    kl_shaped_rewards,
    leave_one_out_baseline,
    masked_mean,
    masked_whiten,
    policy_loss,
    token_logprobs,
    value_loss,
)
from rewardranker.problems import truncate
from rewardranker.records import Problem, Sample
from rewardranker.runio import append_jsonl, content_hash, read_jsonl_tolerant, write_json, write_jsonl

RewardFn = Callable[[list[str], list[str]], list[float]]  # (prompts, completions) -> one reward each


@dataclass
class PPOConfig:
    # rollout
    steps: int = field(default=100, metadata={"help": "PPO iterations (rollout + update) in the whole run"})
    batch_size: int = field(default=16, metadata={"help": "prompts per iteration"})
    samples_per_prompt: int = field(default=1, metadata={"help": "completions drawn per prompt"})
    max_new_tokens: int = field(default=64, metadata={"help": "tokens per completion at most"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus mass of the rollouts"})
    # update
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (policy and value head)"})
    ppo_epochs: int = field(default=2, metadata={"help": "passes over each rollout batch"})
    minibatch_size: int = field(default=8, metadata={"help": "sequences per gradient step"})
    clip_range: float = field(default=0.2, metadata={"help": "policy ratio clip epsilon"})
    clip_range_value: float = field(default=0.2, metadata={"help": "value prediction clip around the old value"})
    vf_coef: float = field(default=0.1, metadata={"help": "weight of the value loss"})
    kl_coef: float = field(default=0.05, metadata={"help": "per-token KL penalty to the reference policy"})
    gamma: float = field(default=1.0, metadata={"help": "discount"})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    # reward
    reward_model_dir: str | None = field(default=None, metadata={"help": "trained reward model folder "
                                                                         "(when no reward_fn is passed)"})
    exec_reward_weight: float = field(default=0.0, metadata={"help": "add this times pass/fail (1/0) from "
                                                                      "executing the completion against its "
                                                                      "problem's tests (strict verdict rule), "
                                                                      "after reward_shaping, before the baseline"})
    reward_shaping: str = field(default="none", metadata={"help": "none: the raw score; preference: "
                                                          "sigmoid(score - score of the problem's reference "
                                                          "solution), bounded so a reward-model blind spot "
                                                          "cannot pay more than matching the reference (PAR, "
                                                          "Fu et al. 2025)"})
    baseline: str = field(default="none", metadata={"help": "none: the value head alone; group: also subtract "
                                                    "the mean (shaped) score of the prompt's other samples "
                                                    "(RLOO), which removes each problem's score offset; "
                                                    "needs samples_per_prompt > 1"})
    # model and bookkeeping
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters; the reference is the base"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    precision: str = field(default="auto", metadata={"help": "auto, fp32, bf16 or fp16"})
    seed: int = field(default=0, metadata={"help": "seed of prompt order, sampling and minibatches"})
    save_every: int = field(default=25, metadata={"help": "checkpoint every this many iterations"})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "samples_per_prompt", "max_new_tokens", "temperature",
                     "learning_rate", "ppo_epochs", "minibatch_size", "clip_range", "clip_range_value",
                     "save_every", "lora_r"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"= {getattr(self, name)!r} must be > 0")
        for name in ("vf_coef", "kl_coef", "exec_reward_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"= {getattr(self, name)!r} must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", f"= {self.top_p} must be in (0, 1]")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ConfigError("gamma" if not 0 <= self.gamma <= 1 else "lam", "must be in [0, 1]")
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"= {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.reward_shaping not in ("none", "preference"):
            raise ConfigError("reward_shaping", f"= {self.reward_shaping!r} is not one of none, preference")
        if self.baseline not in ("none", "group"):
            raise ConfigError("baseline", f"= {self.baseline!r} is not one of none, group")
        if self.baseline == "group" and self.samples_per_prompt < 2:
            raise ConfigError("baseline", "= 'group' needs samples_per_prompt >= 2 (a prompt's other samples "
                                          "are its baseline)")


# --------------------------------------------------------------------------- policy with a value head


def _policy_class():
    import torch

    class PolicyWithValue(torch.nn.Module):
        """The causal LM plus a linear value head on its last hidden state (shared trunk, as in TRL's old PPO)."""

        def __init__(self, lm):
            super().__init__()
            self.lm = lm
            self.v_head = torch.nn.Linear(lm.config.get_text_config().hidden_size, 1)
            torch.nn.init.zeros_(self.v_head.weight)
            torch.nn.init.zeros_(self.v_head.bias)

        def forward(self, input_ids, attention_mask, keep: int = 0):
            """Logits of the last `keep` positions (all when 0), (B, keep, V), and values (B, L)."""
            position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)  # as `generate` numbered them
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          output_hidden_states=True, logits_to_keep=keep)
            return out.logits, self.v_head(out.hidden_states[-1].float())[..., 0]

    return PolicyWithValue


def response_stats(model, input_ids, attention_mask, n_prompt: int, temperature: float, with_values: bool = True):
    """Log-probs (at the sampling temperature), values and logits for the response part: each (B, T)."""
    n_response = input_ids.shape[1] - n_prompt
    logits, values = model(input_ids, attention_mask, keep=n_response + 1)  # the prompt's logits are not needed
    logits = logits[:, :-1] / temperature  # (B, T, V): position t predicts response token t
    logp = token_logprobs(logits, input_ids[:, n_prompt:])
    return logp, (values[:, n_prompt - 1:-1] if with_values else None), logits


# --------------------------------------------------------------------------- rollout


def stop_cut(tok, ids: list[int], stops: tuple[str, ...]) -> int:
    """Tokens up to and including the one that completes the first stop string (all of them when none does)."""
    text = tok.decode(ids, skip_special_tokens=True)
    cut = len(truncate(text, stops))
    if cut == len(text):
        return len(ids)
    need = cut + max(len(s) for s in stops if text.startswith(s, cut))
    for k in range(1, len(ids) + 1):
        if len(tok.decode(ids[:k], skip_special_tokens=True)) >= need:
            return k
    return len(ids)


def rollout(policy, tok, problems: list[Problem], cfg: PPOConfig, seed: int) -> dict:
    """Sample one completion per problem: token ids, the response mask and the truncated completion texts."""
    import torch

    from rewardranker.generation.hf import finished_lengths, generate_tokens

    enc = tok([p.prompt for p in problems], return_tensors="pt", padding=True).to(policy.device)
    stops = tuple(sorted({s for p in problems for s in p.stop_tokens}))
    torch.manual_seed(seed)
    sampling = SimpleNamespace(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                               logprobs=False)
    out = generate_tokens(policy, tok, enc, sampling, stops)
    n_prompt = enc["input_ids"].shape[1]
    response = out.sequences[:, n_prompt:]  # (B, T)
    lengths = finished_lengths(response, tok).tolist()
    texts, keep = [], []
    for b, p in enumerate(problems):
        ids = response[b, :lengths[b]].tolist()
        n = max(1, stop_cut(tok, ids, tuple(p.stop_tokens)))  # at least one action per sequence
        keep.append(n)
        texts.append(truncate(tok.decode(ids[:n], skip_special_tokens=True), p.stop_tokens))
    positions = torch.arange(response.shape[1], device=response.device)
    mask = (positions[None] < torch.tensor(keep, device=response.device)[:, None]).float()  # (B, T)
    input_ids = torch.cat([enc["input_ids"], response], 1)
    attention = torch.cat([enc["attention_mask"], torch.ones_like(response)], 1)
    return {"input_ids": input_ids, "attention_mask": attention, "mask": mask, "n_prompt": n_prompt, "texts": texts}


# --------------------------------------------------------------------------- one PPO iteration


def ppo_step(run: SimpleNamespace, batch: list[Problem], reward_fn: RewardFn, step: int) -> dict[str, float]:
    """Roll out, score, shape rewards with the KL penalty, compute GAE, then run the clipped updates."""
    import torch

    cfg = run.cfg
    with torch.no_grad():
        stream = "rollout" if run.acc.process_index == 0 else f"rollout-{run.acc.process_index}"
        ro = rollout(run.acc.unwrap_model(run.model).lm, run.tok, batch, cfg, _seed(cfg.seed, stream, step))
        scores = _scores(reward_fn, batch, ro["texts"], ro["mask"].device)  # (B,)
        passed = _scores(run.exec_fn, batch, ro["texts"], ro["mask"].device) if run.exec_fn else None
        shaped = shape_scores(run, batch, scores, reward_fn, passed)
        old_logp, old_values, logits = response_stats(run.model, ro["input_ids"], ro["attention_mask"],
                                                      ro["n_prompt"], cfg.temperature)
        ent = masked_mean(entropy(logits), ro["mask"]).item()
        del logits
        rewards, kl = kl_shaped_rewards(shaped, old_logp, _ref_logprobs(run, ro), ro["mask"], cfg.kl_coef)
        adv, returns = gae(rewards, old_values, ro["mask"], cfg.gamma, cfg.lam)
        adv = masked_whiten(adv, ro["mask"])
    stats = _update(run, ro, old_logp, old_values, adv, returns, step)
    return {"step": step + 1, "reward": scores.mean().item(),
            "reward_std": scores.std().item() if len(batch) > 1 else 0.0, "shaped_reward": shaped.mean().item(),
            "kl": kl.sum(1).mean().item(), "entropy": ent, "response_len": ro["mask"].sum(1).mean().item(),
            **({"pass_rate": passed.mean().item()} if passed is not None else {}), **stats}


def _scores(reward_fn: RewardFn, batch: list[Problem], texts: list[str], device):
    import torch

    scores = list(reward_fn([p.prompt for p in batch], texts))
    if len(scores) != len(texts):
        raise RewardRankerError(f"the reward function returned {len(scores)} rewards for {len(texts)} completions")
    rewards = torch.tensor(scores, dtype=torch.float32, device=device)
    unjudged = torch.isnan(rewards)  # e.g. an InfraError: no evidence either way
    if unjudged.any():
        rewards[unjudged] = rewards[~unjudged].mean() if (~unjudged).any() else 0.0
    return rewards


def shape_scores(run: SimpleNamespace, batch: list[Problem], scores, reward_fn: RewardFn, passed=None):
    """The per-sequence reward PPO maximises: `cfg.reward_shaping` applied to the RM scores, plus
    `cfg.exec_reward_weight` times the execution verdicts `passed` (1/0) when given, then `cfg.baseline`
    subtracted."""
    import torch

    if run.cfg.reward_shaping == "preference":
        reference = torch.tensor(_reference_scores(run, batch, reward_fn), dtype=scores.dtype, device=scores.device)
        scores = torch.sigmoid(scores - reference)
    if passed is not None:
        scores = scores + run.cfg.exec_reward_weight * passed
    if run.cfg.baseline == "group":
        scores = leave_one_out_baseline(scores, [p.key for p in batch])
    return scores


def _reference_scores(run: SimpleNamespace, batch: list[Problem], reward_fn: RewardFn) -> list[float]:
    """The reward of each problem's reference solution, scored once per problem and kept for the run."""
    cache = run.reference_scores
    new = [p for p in {p.key: p for p in batch}.values() if p.key not in cache]
    if new:
        got = reward_fn([p.prompt for p in new], [truncate(p.canonical_solution, p.stop_tokens) for p in new])
        cache.update({p.key: float(r) for p, r in zip(new, got)})
    return [cache[p.key] for p in batch]


def check_references(cfg: PPOConfig, problems: list[Problem]) -> None:
    """Preference shaping compares with each problem's reference solution: refuse, before any model loads, a
    problem without one."""
    if cfg.reward_shaping != "preference":
        return
    lacking = [p for p in problems if not p.canonical_solution]
    if lacking:
        raise ConfigError("reward_shaping", f"= 'preference' needs a reference solution, and problem "
                                            f"{lacking[0].problem_id} ({lacking[0].language}) from "
                                            f"{lacking[0].source or 'its loader'} has none "
                                            f"({len(lacking)} of {len(problems)} lack one)")


def _ref_logprobs(run: SimpleNamespace, ro: dict):
    """Log-probs of the frozen reference: a separate copy, or (LoRA) the same model with adapters off."""
    args = (ro["input_ids"], ro["attention_mask"], ro["n_prompt"], run.cfg.temperature, False)
    if run.ref is not None:
        return response_stats(run.ref, *args)[0]
    with run.acc.unwrap_model(run.model).lm.disable_adapter():
        return response_stats(run.model, *args)[0]


def _update(run: SimpleNamespace, ro: dict, old_logp, old_values, adv, returns, step: int) -> dict[str, float]:
    """`ppo_epochs` passes of clipped policy + value loss over shuffled minibatches; returns mean metrics."""
    import torch

    cfg, mask = run.cfg, ro["mask"]
    gen = torch.Generator().manual_seed(_seed(cfg.seed, "minibatch", step))
    agg: dict[str, list[float]] = {}
    for _ in range(cfg.ppo_epochs):
        perm = torch.randperm(len(mask), generator=gen).to(mask.device)
        for idx in perm.split(cfg.minibatch_size):
            logp, values, _ = response_stats(run.model, ro["input_ids"][idx], ro["attention_mask"][idx],
                                             ro["n_prompt"], cfg.temperature)
            pl, pm = policy_loss(logp, old_logp[idx], adv[idx], mask[idx], cfg.clip_range)
            vl, vm = value_loss(values, old_values[idx], returns[idx], mask[idx], cfg.clip_range_value)
            run.acc.backward(pl + cfg.vf_coef * vl)
            run.acc.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
            run.opt.step()
            run.opt.zero_grad()
            for k, v in {"policy_loss": pl.item(), "value_loss": vl.item(), **pm, **vm}.items():
                agg.setdefault(k, []).append(v)
    return {k: sum(v) / len(v) for k, v in agg.items()}


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Problem indices for iteration `step`: slices of a fresh permutation per epoch over the problems.

    A pure function of (step, seed), so a resumed run draws exactly the batches the first run would have.
    """
    import numpy as np

    out, pos = [], step * batch_size
    while len(out) < batch_size:
        epoch, off = divmod(pos, n)
        take = min(batch_size - len(out), n - off)
        out.extend(np.random.default_rng([seed, epoch]).permutation(n)[off:off + take].tolist())
        pos += take
    return out


def _seed(seed: int, what: str, step: int) -> int:
    return int(content_hash(str(seed), what, str(step))[:8], 16)


# --------------------------------------------------------------------------- the run: set-up, resume, logging


def run_ppo(cfg: PPOConfig, policy_dir: str, reward_fn: RewardFn | None, problems: list[Problem],
            out_dir: Path, progress: bool = True) -> Path:
    """Train `policy_dir` with PPO on `problems`; returns the folder of the final policy (`out_dir/policy`).

    `reward_fn(prompts, completions) -> rewards`; None loads `cfg.reward_model_dir`. A rerun with the same
    `out_dir` resumes from the last checkpoint and continues the same run (same batches, same samples).

    Example:
        >>> cfg = PPOConfig(steps=50, reward_model_dir="runs/rm")
        >>> run_ppo(cfg, "runs/sft", None, load_problems("procedural:train:py"), Path("runs/ppo"))
    """
    from rich.progress import Progress
    from torch.utils.tensorboard import SummaryWriter

    if not problems:
        raise RewardRankerError("PPO needs at least one problem")
    out_dir = Path(out_dir)
    check_references(cfg, problems)
    reward_fn = build_reward_fn(cfg, reward_fn, problems)
    main = _is_main()
    if main:
        _check_same_run(cfg, policy_dir, problems, out_dir)
    run = _setup(cfg, policy_dir, out_dir)
    run.exec_fn = execution_reward_fn(problems) if cfg.exec_reward_weight > 0 else None
    writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=run.start + 1) if main else None
    with Progress(disable=not (progress and main)) as bar:
        task = bar.add_task("PPO", total=cfg.steps, completed=run.start)
        for step in range(run.start, cfg.steps):
            metrics = ppo_step(run, _process_batch(problems, cfg, step, run.acc), reward_fn, step)
            if writer is not None:
                _log(out_dir, writer, metrics)
            bar.update(task, advance=1, description=f"PPO reward {metrics['reward']:.3f} kl {metrics['kl']:.3f}")
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
                _save_checkpoint(run, step + 1)
    if writer is not None:
        writer.close()
        plot_rewards(out_dir / "ppo_log.jsonl", out_dir / "reward_curve.png")
    return _save_policy(run, out_dir / "policy")


def _is_main() -> bool:
    """Whether this process writes files: rank 0 under torchrun / accelerate launch (which set RANK).

    Read from the environment because an HF Trainer run earlier in the same process resets accelerate's state.
    """
    return int(os.environ.get("RANK", "0")) == 0


def _process_batch(problems: list[Problem], cfg: PPOConfig, step: int, acc) -> list[Problem]:
    """This process's share of iteration `step`'s prompts (all of them on a single process), each repeated
    `samples_per_prompt` times; with N processes the iteration holds N * batch_size prompts."""
    world, rank = acc.num_processes, acc.process_index
    idx = batch_indices(len(problems), cfg.batch_size * world, step, cfg.seed)[rank::world]
    return [problems[i] for i in idx for _ in range(cfg.samples_per_prompt)]


def _setup(cfg: PPOConfig, policy_dir: str, out_dir: Path) -> SimpleNamespace:
    """Load policy (+ LoRA), reference, optimiser; restore the last checkpoint when there is one."""
    import torch
    from accelerate import Accelerator

    from rewardranker.generation.hf import load_causal_lm

    acc = Accelerator(cpu=not torch.cuda.is_available())
    lm, tok = load_causal_lm(policy_dir, device=str(acc.device), precision=cfg.precision)
    ref = None
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        lm = get_peft_model(lm, LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, lora_dropout=0.0,
                                           target_modules="all-linear", task_type="CAUSAL_LM"))
    else:
        ref = _policy_class()(load_causal_lm(policy_dir, str(acc.device), cfg.precision)[0]).requires_grad_(False)
    model = _policy_class()(lm).to(acc.device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    start = _restore(model, opt, out_dir / "checkpoint")
    model, opt = acc.prepare(model, opt)
    model.eval()  # no dropout: rollout, old log-probs and the update must all see one policy
    return SimpleNamespace(cfg=cfg, acc=acc, model=model, ref=ref, tok=tok, opt=opt, start=start, out_dir=out_dir,
                           reference_scores={})


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(run: SimpleNamespace, step: int) -> None:
    """Trainable weights, optimiser state and the step; written to a temporary folder, then swapped in."""
    import shutil

    import torch

    if not _is_main():
        return
    ckpt, tmp = run.out_dir / "checkpoint", run.out_dir / "checkpoint.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _trainable_state(run.acc.unwrap_model(run.model)), "optimizer": run.opt.state_dict(),
                "step": step}, tmp / "state.pt")
    shutil.rmtree(ckpt, ignore_errors=True)
    tmp.rename(ckpt)


def _restore(model, opt, ckpt: Path) -> int:
    """Load a checkpoint into model and optimiser; returns the step to continue from (0 without one)."""
    import torch

    if not (ckpt / "state.pt").exists():
        return 0
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    missing = set(_trainable_state(model)) - set(state["model"])
    if missing:
        raise RewardRankerError(f"{ckpt}: checkpoint lacks {sorted(missing)[:3]}: it is from another model")
    model.load_state_dict(state["model"], strict=False)
    opt.load_state_dict(state["optimizer"])
    return int(state["step"])


def _check_same_run(cfg: PPOConfig, policy_dir: str, problems: list[Problem], out_dir: Path) -> None:
    """Refuse to resume a run with other settings (only `steps` may grow); record them for the next rerun."""
    mine = {**asdict(cfg), "policy_dir": str(policy_dir),
            "problems_hash": content_hash(*[p.problem_id for p in problems])}
    path = out_dir / "ppo_config.json"
    if path.exists() and (out_dir / "checkpoint" / "state.pt").exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        for k, v in mine.items():
            if k != "steps" and before.get(k) != v:
                raise ConfigError(k, f"= {v!r} but {out_dir} holds a run with {before.get(k)!r}: "
                                     "use another output folder to start a new run", source=path)
    log = read_jsonl_tolerant(out_dir / "ppo_log.jsonl")
    write_json(path, mine)
    done = _checkpoint_step(out_dir)
    write_jsonl(out_dir / "ppo_log.jsonl", [r for r in log if r["step"] <= done])  # drop steps after the checkpoint


def _checkpoint_step(out_dir: Path) -> int:
    import torch

    path = out_dir / "checkpoint" / "state.pt"
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"]) if path.exists() else 0


def _log(out_dir: Path, writer, metrics: dict[str, float]) -> None:
    append_jsonl(out_dir / "ppo_log.jsonl", [metrics])
    for k, v in metrics.items():
        if k != "step":
            writer.add_scalar(f"ppo/{k}", v, metrics["step"])


def _save_policy(run: SimpleNamespace, dest: Path) -> Path:
    """A plain model folder (LoRA merged) with the tokenizer, ready for `sample` or another PPO run."""
    lm = run.acc.unwrap_model(run.model).lm
    if run.cfg.lora:
        lm = lm.merge_and_unload()
    if _is_main():
        lm.save_pretrained(dest)
        run.tok.save_pretrained(dest)
    return dest


def plot_rewards(log_path: Path, png: Path) -> Path:
    """Mean reward and KL per PPO iteration, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl_tolerant(log_path)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in rows]
    lines = ax.plot(steps, [r["reward"] for r in rows], label="mean reward")
    ax.set_xlabel("PPO iteration")
    ax.set_ylabel("reward")
    ax2 = ax.twinx()
    lines += ax2.plot(steps, [r["kl"] for r in rows], color="tab:orange", alpha=0.6, label="KL to reference")
    ax2.set_ylabel("KL (nats per completion)")
    ax.legend(handles=lines, loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


# --------------------------------------------------------------------------- rewards


def build_reward_fn(cfg: PPOConfig, reward_fn: RewardFn | None, problems: list[Problem]) -> RewardFn:
    """The given reward function, or the RM in `cfg.reward_model_dir` (the execution reward is separate:
    `shape_scores` adds it after the RM score is shaped, so a verdict is never squashed by the sigmoid)."""
    if reward_fn is None:
        if not cfg.reward_model_dir:
            raise ConfigError("reward_model_dir", "is unset and no reward function was given")
        reward_fn = reward_model_fn(cfg.reward_model_dir, problems)
    return reward_fn


def _as_samples(problems: list[Problem], prompts: list[str], completions: list[str]):
    """Map (prompt, completion) pairs back to problems and Sample records for the RM and the executor."""
    by_prompt = {p.prompt: p for p in problems}
    missing = [pr for pr in prompts if pr not in by_prompt]
    if missing:
        raise RewardRankerError(f"prompt {missing[0][:60]!r} matches none of the PPO problems")
    used = {by_prompt[pr].key: by_prompt[pr] for pr in prompts}
    return used, [Sample(by_prompt[pr].problem_id, i, c, language=by_prompt[pr].language)
                  for i, (pr, c) in enumerate(zip(prompts, completions))]


def reward_model_fn(model_dir: str, problems: list[Problem]) -> RewardFn:
    """Score decoded completions with the trained reward model (its own tokenizer re-encodes the text)."""
    from rewardranker.reward import RewardModel

    rm = RewardModel.load(model_dir)

    def score(prompts: list[str], completions: list[str]) -> list[float]:
        used, samples = _as_samples(problems, prompts, completions)
        return list(rm.score(used, samples, progress=False))

    return score


def execution_reward_fn(problems: list[Problem]) -> RewardFn:
    """1.0 when the completion passes its problem's tests, else 0.0 (sandboxed executor, strict verdict rule).

    An InfraError (never judged) also earns 0.0: a program that learns to crash its sandbox must not be paid more
    than one that fails, so an unjudged program is never rewarded as a partial pass."""
    from rewardranker.execution.runner import ExecutionConfig, execute

    cfg = ExecutionConfig(verdict_rule="strict")  # a policy optimised against exit codes learns to exit early

    def passed(prompts: list[str], completions: list[str]) -> list[float]:
        used, samples = _as_samples(problems, prompts, completions)
        return [float(v.passed) for v in execute(used, samples, cfg, progress=False)]

    return passed
