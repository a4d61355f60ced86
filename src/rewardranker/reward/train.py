"""Train the Bradley–Terry reward model with the HF Trainer (so `accelerate launch` scales it unchanged)."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardranker.errors import RewardRankerError
from rewardranker.records import Problem, Sample
from rewardranker.reward.config import RewardConfig
from rewardranker.reward.model import RewardModel, pad_batch
from rewardranker.reward.pairs import Key, Pair, bt_loss, mine_pairs


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


def _training_args(cfg: RewardConfig, out_dir: Path, progress: bool, bf16: bool):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir / "trainer"), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.lr, warmup_steps=0, lr_scheduler_type="linear", bf16=bf16,
        use_cpu=not torch.cuda.is_available(), seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        save_strategy="steps", save_steps=cfg.checkpoint_every, save_total_limit=1,
        logging_steps=10, remove_unused_columns=False, disable_tqdm=not (progress and _stderr_is_tty()),
        dataloader_num_workers=0, max_grad_norm=1.0,
        **({"gradient_checkpointing": True} if cfg.gradient_checkpointing else {}))


def train_heads_only(rm: RewardModel, cfg: RewardConfig, dataset: PairDataset, progress: bool) -> float:
    """Frozen backbone (train_top_layers=0, no LoRA): run it once per distinct program (cached on disk, so a
    killed run resumes where it stopped), then fit only the scalar head and the feature head with the same
    Bradley–Terry loss. Written by hand (not the Trainer) because on a CPU this turns hours of repeated forward
    passes into seconds; the result is the same model as the Trainer path would produce with a frozen backbone
    (minus dropout noise)."""
    import torch

    from rewardranker.reward.encoder import score_linear

    keys = list(dataset.ids)
    head, fhead = score_linear(rm.net.backbone), rm.net.feature_head
    head.float()
    if cfg.uses_text_head:
        x = torch.tensor(rm.head_inputs([dataset.ids[k] for k in keys], progress), dtype=torch.float32)
    else:  # no text head: the reward is the feature head alone; a zero head keeps every scoring path equal
        with torch.no_grad():
            for p in head.parameters():
                p.zero_()
        x = torch.zeros(len(keys), head.in_features)
    if progress and cfg.uses_text_head:
        st = rm.encoder.stats
        print(f"train-rm: backbone outputs of {len(x)} candidates: {st['encoded']} programs encoded, "
              f"{st['from_cache']} from the cache ({rm.encoder.cache.path if rm.encoder.cache else 'no cache'})",
              file=sys.stderr, flush=True)
    row = {k: i for i, k in enumerate(keys)}
    f = torch.tensor(np.stack([dataset.feats[k] for k in keys]), dtype=torch.float32)
    c = torch.tensor([row[p.chosen_key] for p in dataset.pairs])
    r = torch.tensor([row[p.rejected_key] for p in dataset.pairs])
    w = torch.tensor([p.weight for p in dataset.pairs], dtype=torch.float32)
    groups = [{"params": fhead.parameters(), "lr": cfg.head_lr, "weight_decay": 0.0}]
    if cfg.uses_text_head:
        groups.append({"params": head.parameters(), "lr": cfg.head_lr, "weight_decay": 0.01})
    opt = torch.optim.AdamW(groups)
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
                       features: np.ndarray | None = None, progress: bool = True,
                       generated_tests: dict[str, list[str]] | None = None, exec_cfg=None) -> Path:
    """Mine pairs, train with the Bradley–Terry loss, save to `out_dir`; returns `out_dir`.

    `features` (rows aligned with `samples`) skips recomputing the candidate features, e.g. across CV folds.
    `generated_tests` (problem id -> model-written asserts) turn on the execution features (see
    `RewardConfig.execution_features`); the candidates are then run on them through the sandboxed executor.
    """
    from transformers import set_seed

    if not samples:
        raise RewardRankerError("no candidates to train on")
    set_seed(cfg.seed)
    out_dir = Path(out_dir)
    pairs = mine_pairs(samples, passed, cfg.max_pairs_per_problem, cfg.seed, weights)
    rm = RewardModel.build(cfg, execution=cfg.use_execution({s.problem_id for s in samples}, generated_tests))
    t0 = time.perf_counter()
    feats = rm.features(problems, samples, progress, generated_tests, exec_cfg) if features is None else features
    if feats.shape[1] != len(rm.feature_names):
        raise RewardRankerError(f"features have {feats.shape[1]} columns; the model reads {len(rm.feature_names)} "
                                f"({', '.join(rm.feature_names)})")
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
    from transformers.trainer_utils import get_last_checkpoint

    args = _training_args(cfg, out_dir, progress, rm.bf16)
    callbacks = [] if (not progress or _stderr_is_tty()) else [_plain_progress_callback()]
    trainer = _trainer_class()(model=rm.net, args=args, train_dataset=dataset,
                               data_collator=make_collator(rm.tokenizer.pad_token_id),
                               optimizers=(_optimizer(rm, cfg), None), callbacks=callbacks)
    last = get_last_checkpoint(args.output_dir) if Path(args.output_dir).is_dir() else None
    if last is not None and trainer.is_world_process_zero():
        print(f"train-rm: resuming from {last}", file=sys.stderr, flush=True)
    result = trainer.train(resume_from_checkpoint=last)
    if trainer.is_world_process_zero():
        shutil.rmtree(args.output_dir, ignore_errors=True)  # checkpoints are only for resuming; the model is saved
    return result.training_loss, trainer.is_world_process_zero()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _plain_progress_callback():
    """A TrainerCallback that prints plain progress lines (steps, rate, ETA) when stderr is not a terminal."""
    from transformers import TrainerCallback

    from rewardranker.reward.progress import Progress

    class PlainProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = Progress("train-rm", state.max_steps, True, unit="steps")
            self.bar.done = state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.advance(state.global_step - self.bar.done)

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.close()

    return PlainProgress()
