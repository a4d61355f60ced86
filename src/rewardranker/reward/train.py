"""Train the Bradley–Terry reward model with the HF Trainer (so `accelerate launch` scales it unchanged)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardranker.errors import RewardRankerError
from rewardranker.records import Problem, Sample
from rewardranker.reward.config import RewardConfig
from rewardranker.reward.model import RewardModel, pad_batch
from rewardranker.reward.pairs import Key, Pair, bt_loss, mine_pairs

if TYPE_CHECKING:
    import torch


class PairDataset:
    """Pairs as token ids + consensus features; the collator puts all chosen rows first, then all rejected."""

    def __init__(self, pairs: list[Pair], ids: dict[Key, list[int]], feats: dict[Key, np.ndarray]):
        self.pairs, self.ids, self.feats = pairs, ids, feats

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.pairs[i]
        c, r = p.chosen_key, p.rejected_key
        return {"chosen": self.ids[c], "rejected": self.ids[r], "chosen_f": self.feats[c],
                "rejected_f": self.feats[r], "weight": p.weight}


def make_collator(pad_id: int):
    import torch

    def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = pad_batch([r["chosen"] for r in rows] + [r["rejected"] for r in rows], pad_id)
        feats = np.stack([r["chosen_f"] for r in rows] + [r["rejected_f"] for r in rows])
        batch["features"] = torch.tensor(feats, dtype=torch.float32)
        batch["weight"] = torch.tensor([r["weight"] for r in rows], dtype=torch.float32)
        return batch

    return collate


def _trainer_class():
    from transformers import Trainer

    class BTTrainer(Trainer):
        """HF Trainer whose loss is the weighted Bradley–Terry loss over (chosen, rejected) halves."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            rewards = model(inputs["input_ids"], inputs["attention_mask"], inputs["features"])
            n = inputs["weight"].shape[0]
            loss = bt_loss(rewards[:n], rewards[n:], inputs["weight"])
            return (loss, {"rewards": rewards}) if return_outputs else loss

    return BTTrainer


def _optimizer(rm: RewardModel, cfg: RewardConfig):
    """AdamW with a higher learning rate for the few weights of the feature head."""
    import torch

    head = list(rm.net.feature_head.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in rm.net.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": cfg.head_lr, "weight_decay": 0.0}]
    if body:
        groups.append({"params": body, "lr": cfg.lr, "weight_decay": 0.01})
    return torch.optim.AdamW(groups)


def _training_args(cfg: RewardConfig, out_dir: Path, progress: bool):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir / "trainer"), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.lr, warmup_steps=0, lr_scheduler_type="linear", bf16=cfg.bf16,
        use_cpu=not torch.cuda.is_available(), seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        save_strategy="no", logging_steps=10, remove_unused_columns=False, disable_tqdm=not progress,
        dataloader_num_workers=0, max_grad_norm=1.0,
        **({"gradient_checkpointing": True} if cfg.gradient_checkpointing else {}))


_HEAD_INPUTS: dict[tuple[str, bool], dict[tuple[int, ...], torch.Tensor]] = {}


def score_linear(backbone):
    """The backbone's scalar output layer (BERT `classifier`, GPT-2/Llama `score`): a Linear with one output."""
    import torch

    base = getattr(backbone, backbone.base_model_prefix, None)
    inside = {id(m) for m in base.modules()} if base is not None else set()
    heads = [m for m in backbone.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1
             and id(m) not in inside]
    if len(heads) != 1:
        raise RewardRankerError(f"cannot find the scalar head of {type(backbone).__name__} (found {len(heads)})")
    return heads[0]


def head_inputs(rm: RewardModel, ids: list[list[int]], progress: bool) -> torch.Tensor:
    """What the frozen backbone feeds its scalar head for each sequence, captured by a forward hook."""
    import torch

    from rewardranker.reward.model import autocast
    from rewardranker.reward.progress import track

    head, captured = score_linear(rm.net.backbone), {}
    hook = head.register_forward_hook(lambda _m, args, _out: captured.__setitem__("x", args[0].detach().float()))
    rm.net.eval()
    # the frozen backbone is the pretrained one, so its outputs can be reused across CV folds in one process
    cache = _HEAD_INPUTS.setdefault((rm.cfg.backbone_path, rm.cfg.bf16), {})
    todo = sorted({tuple(s) for s in ids if tuple(s) not in cache}, key=len)
    bs = rm.cfg.score_batch_size
    try:
        for start in track(range(0, len(todo), bs), "frozen backbone pass", progress, total=-(-len(todo) // bs)):
            chunk = todo[start:start + bs]
            batch = pad_batch([list(s) for s in chunk], rm.tokenizer.pad_token_id, rm.device)
            with torch.no_grad(), autocast(rm.cfg.bf16, rm.device):
                rm.net.backbone(**batch)
            cache.update(zip(chunk, captured["x"].cpu()))
    finally:
        hook.remove()
    return torch.stack([cache[tuple(s)] for s in ids]) if ids else torch.zeros(0, head.in_features)


def train_heads_only(rm: RewardModel, cfg: RewardConfig, dataset: PairDataset, progress: bool) -> float:
    """Frozen backbone (train_top_layers=0, no LoRA): run it once per candidate, then fit only the scalar head
    and the feature head with the same Bradley–Terry loss. Written by hand (not the Trainer) because on a CPU
    this turns hours of repeated forward passes into seconds; the result is the same model as the Trainer
    path would produce with a frozen backbone (minus dropout noise)."""
    import torch

    keys = list(dataset.ids)
    x = head_inputs(rm, [dataset.ids[k] for k in keys], progress)
    row = {k: i for i, k in enumerate(keys)}
    f = torch.tensor(np.stack([dataset.feats[k] for k in keys]), dtype=torch.float32)
    head, fhead = score_linear(rm.net.backbone), rm.net.feature_head
    head.float()
    c = torch.tensor([row[p.chosen_key] for p in dataset.pairs])
    r = torch.tensor([row[p.rejected_key] for p in dataset.pairs])
    w = torch.tensor([p.weight for p in dataset.pairs], dtype=torch.float32)
    opt = torch.optim.AdamW([{"params": head.parameters(), "lr": cfg.head_lr, "weight_decay": 0.01},
                             {"params": fhead.parameters(), "lr": cfg.head_lr, "weight_decay": 0.0}])
    steps = cfg.max_steps if cfg.max_steps > 0 else int(np.ceil(len(c) / cfg.batch_size * cfg.epochs))
    gen = torch.Generator().manual_seed(cfg.seed)
    reward = lambda i: head(x[i])[:, 0] + fhead(f[i])[:, 0]
    loss = torch.tensor(0.0)
    for _ in range(steps):
        b = torch.randint(0, len(c), (cfg.batch_size,), generator=gen)
        opt.zero_grad()
        loss = bt_loss(reward(c[b]), reward(r[b]), w[b])
        loss.backward()
        opt.step()
    return float(loss.detach())


def train_reward_model(cfg: RewardConfig, problems: dict[str, Problem], samples: list[Sample],
                       passed: dict[Key, bool], out_dir: str | Path, weights: dict[Key, float] | None = None,
                       features: np.ndarray | None = None, progress: bool = True) -> Path:
    """Mine pairs, train with the Bradley–Terry loss, save to `out_dir`; returns `out_dir`.

    `features` (rows aligned with `samples`) skips recomputing consensus features, e.g. across CV folds.
    """
    from transformers import set_seed

    if not samples:
        raise RewardRankerError("no candidates to train on")
    set_seed(cfg.seed)
    out_dir = Path(out_dir)
    pairs = mine_pairs(samples, passed, cfg.max_pairs_per_problem, cfg.seed, weights)
    rm = RewardModel.build(cfg)
    t0 = time.perf_counter()
    feats = rm.features(problems, samples, progress) if features is None else features
    used = {k for p in pairs for k in (p.chosen_key, p.rejected_key)}
    keep = [i for i, s in enumerate(samples) if s.key in used]
    ids = rm.tokenize(problems, [samples[i] for i in keep])
    keys = [samples[i].key for i in keep]
    dataset = PairDataset(pairs, dict(zip(keys, ids)), {k: feats[i] for k, i in zip(keys, keep)})
    if cfg.top_layers == 0 and not cfg.lora:
        final_loss, main = train_heads_only(rm, cfg, dataset, progress), True
    else:
        final_loss, main = _train_with_trainer(rm, cfg, dataset, out_dir, progress)
    if main:
        stats = {"pairs": len(pairs), "problems_with_pairs": len({(p.language, p.problem_id) for p in pairs}),
                 "train_seconds": round(time.perf_counter() - t0, 1), "final_loss": final_loss}
        rm.save(out_dir, {"training": stats})
        from rewardranker.reward.provenance import write_training_record

        write_training_record(out_dir, problems, samples)  # so `eval` can warn about in-sample scores
    return out_dir


def _train_with_trainer(rm: RewardModel, cfg: RewardConfig, dataset: PairDataset, out_dir: Path,
                        progress: bool) -> tuple[float, bool]:
    """(final loss, whether this is the main process) after training through the HF Trainer."""
    if cfg.gradient_checkpointing:
        rm.net.backbone.gradient_checkpointing_enable()
    trainer = _trainer_class()(model=rm.net, args=_training_args(cfg, out_dir, progress), train_dataset=dataset,
                               data_collator=make_collator(rm.tokenizer.pad_token_id),
                               optimizers=(_optimizer(rm, cfg), None))
    result = trainer.train()
    return result.training_loss, trainer.is_world_process_zero()
