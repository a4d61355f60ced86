"""Supervised fine-tuning of the generator on prompt -> solution pairs, loss on the solution tokens only.

TRL's SFTTrainer does the work (prompt-completion dataset, completion-only loss, EOS appended), so the same
call scales with `accelerate launch`; LoRA goes through peft. Data comes from reference solutions
(`examples_from_problems`) or from samples that passed their tests (`examples_from_verdicts`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.generation.config import PRECISIONS, resolve_device_dtype
from rewardranker.records import Problem
from rewardranker.runio import read_jsonl_tolerant, write_json, write_jsonl


@dataclass
class SFTConfig:
    # optimisation (defaults suit the embedded tiny generator trained from scratch; real models want ~2e-5)
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate (cosine decay, warm-up)"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the examples"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimiser steps (-1: epochs)"})
    batch_size: int = field(default=16, metadata={"help": "examples per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "steps accumulated per optimiser update"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "fraction of steps spent warming up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_length: int = field(default=256, metadata={"help": "tokens per example at most (longer ones truncated)"})
    seed: int = field(default=0, metadata={"help": "random seed (data order, LoRA init)"})
    # model
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA path"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on a GPU that has it, else fp32), "
                                                             "fp32, bf16 or fp16"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    # bookkeeping
    logging_steps: int = field(default=10, metadata={"help": "log the loss every this many steps"})
    save_steps: int = field(default=0, metadata={"help": "checkpoint every this many steps (0: at the end)"})

    def __post_init__(self) -> None:
        for name in ("learning_rate", "epochs", "batch_size", "grad_accum", "max_length", "lora_r",
                     "lora_alpha", "logging_steps"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"= {getattr(self, name)!r} must be > 0")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError("max_steps", f"= {self.max_steps} must be -1 (use epochs) or > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("warmup_ratio", f"= {self.warmup_ratio} must be in [0, 1)")
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"= {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.save_steps < 0:
            raise ConfigError("save_steps", f"= {self.save_steps} must be >= 0")


def examples_from_problems(problems: list[Problem]) -> list[tuple[str, str]]:
    """(prompt, reference solution) for every problem that has one."""
    out = [(p.prompt, p.canonical_solution) for p in problems if p.canonical_solution]
    if not out:
        raise RewardRankerError("none of the problems carries a reference solution (canonical_solution): "
                                "use a source that has them, or --samples with --verdicts")
    return out


def examples_from_verdicts(problems: list[Problem], samples_path: Path, verdicts_path: Path) -> list[tuple[str, str]]:
    """(prompt, completion) for every distinct sample whose verdict passed."""
    from rewardranker.metrics import align_verdicts, load_verdicts
    from rewardranker.problems import load_candidates

    cands = load_candidates(samples_path, problems)
    verdicts = align_verdicts(load_verdicts(verdicts_path), [s.key for s in cands.samples])
    passed = {k for k, ok in verdicts.items() if ok}  # keys: (language, problem_id, sample_id)
    seen, out = set(), []
    for s in cands.samples:
        if s.key not in passed:
            continue
        prompt = s.prompt or cands.problems[s.problem_key].prompt
        if (prompt, s.completion) not in seen:
            seen.add((prompt, s.completion))
            out.append((prompt, s.completion))
    if not out:
        raise RewardRankerError(f"{verdicts_path}: no sample passed, so there is nothing to fine-tune on")
    return out


def run_sft(cfg: SFTConfig, model_dir_or_id: str, examples: list[tuple[str, str]], out_dir: Path) -> Path:
    """Fine-tune `model_dir_or_id` on (prompt, solution) pairs; the model and tokenizer go to `out_dir`.

    A rerun with the same `out_dir` resumes from the last checkpoint there.

    Example:
        >>> examples = examples_from_problems(load_problems("procedural:train"))
        >>> run_sft(SFTConfig(epochs=5), "runs/gen0", examples, Path("runs/sft"))
    """
    from datasets import Dataset

    if not examples:
        raise RewardRankerError("no SFT examples given")
    out_dir = Path(out_dir)
    model, tok = _load_for_training(model_dir_or_id, cfg)
    data = Dataset.from_dict({"prompt": [p for p, _ in examples], "completion": [c for _, c in examples]})
    trainer = _trainer(cfg, model, tok, data, out_dir)
    ckpts = sorted((out_dir / "checkpoints").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=str(ckpts[-1]) if ckpts else None)
    _save_final(trainer, tok, cfg, out_dir, model_dir_or_id, len(examples))
    return out_dir


def _load_for_training(model: str, cfg: SFTConfig):
    """Load on the CPU; the Trainer moves it to its device (one per process).

    precision "auto" loads fp32 weights and trains under bf16 autocast on a GPU (mixed precision); an explicit
    "bf16" loads bf16 weights, which halves memory for the frozen base of a LoRA run.
    """
    from rewardranker.generation.hf import load_causal_lm

    return load_causal_lm(model, device="cpu", precision=cfg.precision)


def _trainer(cfg: SFTConfig, model, tok, data, out_dir: Path):
    import torch
    import trl

    _, dtype = resolve_device_dtype("auto", cfg.precision)
    args = trl.SFTConfig(
        output_dir=str(out_dir / "checkpoints"), learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine",
        weight_decay=cfg.weight_decay, max_length=cfg.max_length, completion_only_loss=True, seed=cfg.seed,
        bf16=str(dtype) == "torch.bfloat16", fp16=str(dtype) == "torch.float16",
        gradient_checkpointing=cfg.gradient_checkpointing, logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        report_to=["tensorboard"], dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),  # on CPU, torchrun / accelerate launch then give DDP over gloo
        disable_tqdm=False, dataset_num_proc=None,
    )
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    return trl.SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                          peft_config=peft_config)


def _save_final(trainer, tok, cfg: SFTConfig, out_dir: Path, base: str, n_examples: int) -> None:
    """Save a plain model folder (LoRA merged in), the loss log, and the resolved config."""
    if not trainer.is_world_process_zero():  # under accelerate launch / torchrun one process writes
        return
    model = trainer.model
    if cfg.lora:
        model = model.merge_and_unload()  # PPO and sampling then load one ordinary checkpoint
    model.save_pretrained(out_dir)
    tok.padding_side = "left"  # the saved tokenizer is used for generation
    tok.save_pretrained(out_dir)
    write_jsonl(out_dir / "sft_log.jsonl", trainer.state.log_history)
    write_json(out_dir / "sft_config.json", {**asdict(cfg), "base_model": base, "n_examples": n_examples})


def sft_losses(out_dir: Path) -> list[float]:
    """Training losses logged by a finished run, in step order."""
    return [r["loss"] for r in read_jsonl_tolerant(Path(out_dir) / "sft_log.jsonl") if "loss" in r]
