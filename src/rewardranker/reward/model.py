"""The reward model: any HF backbone with a scalar head, plus a linear head on consensus features.

reward(x) = backbone_head(tokens of prompt tail + completion) + w · features(x among its siblings).
The backbone is saved with `save_pretrained` (LoRA adapters merged in), the feature head and settings in
`reward_head.json`, so `RewardModel.load(dir)` needs nothing but the folder (and, for consensus "minilm",
the packaged MiniLM).
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from rewardranker.errors import ConfigError, RewardRankerError
from rewardranker.problems import ProblemSet, index_problems, resolve_languages
from rewardranker.records import Problem, Sample
from rewardranker.reward.config import RewardConfig, default_backbone
from rewardranker.reward.encoder import pad_batch
from rewardranker.reward.encoding import encode_whitespace, tokenizer_keeps_whitespace
from rewardranker.reward.features import (
    EXEC_FEATURE_NAMES,
    FEATURE_NAMES,
    candidate_features,
    execution_features,
    tfidf_embedder,
)
from rewardranker.reward.hardware import native_bf16, resolve_bf16, resolve_runtime
from rewardranker.reward.progress import track

HEAD_FILE = "reward_head.json"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _torch():
    import torch

    return torch


def autocast(enabled: bool, device: str = "cpu"):
    """bf16 autocast context on `device` (no-op when disabled)."""
    torch = _torch()
    return torch.autocast(device, dtype=torch.bfloat16) if enabled else nullcontext()


def _is_local(path: str) -> bool:
    return Path(path).expanduser().exists()


def load_backbone(path: str, dtype: Any = None):
    """(sequence-classification model with one output, tokenizer) from a hub id or local folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the expected "classifier weights newly initialised" report
    kwargs = {"local_files_only": True} if _is_local(path) or os.environ.get("HF_HUB_OFFLINE") == "1" else {}
    try:
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype, **kwargs)
    except (OSError, ValueError) as e:
        raise ConfigError("backbone", f"cannot load {path!r} as a model + tokenizer: {e}") from None
    if tok.pad_token is None:  # decoder LMs: pad with EOS; the seq-cls head reads the last non-pad token
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    model.config.pad_token_id = tok.pad_token_id
    tok.truncation_side = "left"  # keep the end of the prompt (the signature) and the whole completion
    return model, tok


def _blocks(model) -> list:
    """The transformer blocks: the longest nn.ModuleList in the model."""
    torch = _torch()
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def freeze_lower_layers(model, train_top_layers: int) -> None:
    """Train only the heads (0), the heads + final norms/pooler + top k blocks (k > 0), or everything (-1)."""
    if train_top_layers < 0:
        return
    base = getattr(model, model.base_model_prefix, None)
    base_params = {id(p) for p in base.parameters()} if base is not None else set()
    blocks = _blocks(base if base is not None else model)
    block_params = {id(p) for b in blocks for p in b.parameters()}
    top = {id(p) for b in blocks[len(blocks) - train_top_layers:] for p in b.parameters()} if train_top_layers else set()
    for name, p in model.named_parameters():
        head = id(p) not in base_params
        outside_blocks = id(p) not in block_params and "embed" not in name and "wte" not in name and "wpe" not in name
        p.requires_grad = head or id(p) in top or (train_top_layers > 0 and outside_blocks) or "pooler" in name


def apply_lora(model, cfg: RewardConfig):
    """Wrap the backbone in peft LoRA adapters (the score head stays fully trainable)."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets: Any = cfg.lora_targets if cfg.lora_targets == "all-linear" else cfg.lora_targets.split(",")
    lcfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                      target_modules=targets)
    return get_peft_model(model, lcfg)


def _net_class():
    torch = _torch()

    class RewardNet(torch.nn.Module):
        """Backbone scalar head + linear head on the candidate's consensus features."""

        def __init__(self, backbone, n_features: int):
            super().__init__()
            self.backbone = backbone
            self.feature_head = torch.nn.Linear(n_features, 1, bias=False)
            torch.nn.init.zeros_(self.feature_head.weight)

        def forward(self, input_ids, attention_mask, features=None):
            r = self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]
            if features is not None:
                r = r + self.feature_head(features.to(self.feature_head.weight.dtype))[:, 0].to(r.dtype)
            return r

    return RewardNet


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised embeddings of the packaged MiniLM, each distinct text encoded once (cached)."""

    def __init__(self, max_length: int = 256, batch_size: int = 32, bf16: bool | str = "auto", int8: bool = False,
                 runtime: str = "auto"):
        from rewardranker.reward.encoder import FrozenEncoder

        model, self.tok = load_backbone(default_backbone())
        self.tok.truncation_side = "right"
        self.max_length = max_length
        self.encoder = FrozenEncoder(model, self.tok.pad_token_id,
                                     resolve_bf16(bf16, "cpu", log=not isinstance(bf16, bool)), int8, batch_size,
                                     runtime=resolve_runtime(runtime, "cpu", True, bf16))

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:  # the fast tokenizer fails on an empty batch (e.g. no problem has two candidates)
            return []
        return self.tok(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def prefetch(self, texts: list[str], progress: bool = False) -> None:
        """Encode every distinct text in one length-sorted pass (with progress), before per-problem lookups."""
        self.encoder.encode(self._ids(list(dict.fromkeys(texts))), progress, "consensus embeddings")

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(self._ids(texts))[:, : self.encoder.hidden]


_EMBEDDERS: dict[tuple[Any, ...], Any] = {}


def get_embedder(kind: str, bf16: bool | str = "auto", int8: bool = False, runtime: str = "auto",
                 max_length: int = 256):
    """The consensus embedder for `kind` (minilm | tfidf | none), loaded once per process, precision, runtime
    and length."""
    if kind == "none":
        return None
    if kind == "tfidf":
        return tfidf_embedder
    key = (kind, bf16, int8, runtime, max_length)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = MiniLMEmbedder(max_length=max_length, bf16=bf16, int8=int8, runtime=runtime)
    return _EMBEDDERS[key]


class RewardModel:
    """A trained (or freshly built) reward model: scores candidates, saves and loads as a folder.

    Public API (used by self-training, PPO and serving): `build(cfg)`, `load(dir)` (alias `from_pretrained`),
    `save(dir)`, `score(problems, samples)`.
    """

    def __init__(self, net, tokenizer, cfg: RewardConfig, visible_whitespace: bool,
                 feature_names: tuple[str, ...] = FEATURE_NAMES):
        self.net, self.tokenizer, self.cfg = net, tokenizer, cfg
        self.visible_whitespace = visible_whitespace
        self.feature_names = tuple(feature_names)
        self.tokenizer.truncation_side = "right" if cfg.completion_only else "left"
        self.bf16 = resolve_bf16(cfg.bf16, self.device)
        self.runtime = resolve_runtime(cfg.runtime, self.device, cfg.frozen, cfg.bf16, log=False)
        self._encoder = None

    @property
    def device(self) -> str:
        return "cuda" if _torch().cuda.is_available() else "cpu"

    @property
    def precision(self) -> str:
        """fp32 | bf16 | int8 (int8: the frozen backbone on CPU)."""
        if self.cfg.int8 and self.cfg.frozen and self.device == "cpu":
            return "int8"
        return "bf16" if self.bf16 else "fp32"

    @property
    def uses_execution(self) -> bool:
        """Whether the model reads execution features (it then needs the problems' generated tests)."""
        return any(n in EXEC_FEATURE_NAMES for n in self.feature_names)

    @classmethod
    def build(cls, cfg: RewardConfig, execution: bool = False) -> RewardModel:
        """A new model from `cfg.backbone` with freshly initialised heads, frozen/LoRA-wrapped as configured;
        `execution` adds the execution features (agreement on generated tests) to its inputs."""
        torch = _torch()
        cuda_bf16 = torch.cuda.is_available() and resolve_bf16(cfg.bf16, "cuda", log=False)
        backbone, tok = load_backbone(cfg.backbone_path, torch.bfloat16 if cuda_bf16 else torch.float32)
        if cfg.lora:
            backbone = apply_lora(backbone, cfg)
        else:
            freeze_lower_layers(backbone, cfg.top_layers)
        visible = cfg.whitespace == "visible" or (cfg.whitespace == "auto" and not tokenizer_keeps_whitespace(tok))
        names = FEATURE_NAMES + (EXEC_FEATURE_NAMES if execution else ())
        return cls(_net_class()(backbone, len(names)), tok, cfg, visible, names)

    @classmethod
    def load(cls, model_dir: str | Path, bf16: bool | str | None = None, int8: bool | None = None,
             runtime: str | None = None) -> RewardModel:
        """Load a folder written by `save` (the backbone through `from_pretrained`).

        `bf16` / `int8` / `runtime` override the settings saved with the model (None: keep them; "auto" is
        resolved on this machine, so a model trained with bf16 on a GPU runs in fp32 on a CPU without native bf16).
        """
        torch = _torch()
        model_dir = Path(model_dir)
        head_file = model_dir / HEAD_FILE
        if not head_file.exists():
            raise RewardRankerError(f"{model_dir}: not a reward-model folder ({HEAD_FILE} is missing); "
                                    "train one with `rewardranker train-rm`")
        head = json.loads(head_file.read_text(encoding="utf-8"))
        settings = dict(head["config"])
        settings.setdefault("consensus_max_length", 256)  # models saved before the setting existed read 256
        if runtime is not None:
            settings["runtime"] = runtime
        if bf16 is not None:
            settings["bf16"] = bf16
        if int8 is not None:
            settings["int8"] = int8
        cfg = RewardConfig.from_dict(settings, head_file)
        cuda_bf16 = torch.cuda.is_available() and resolve_bf16(cfg.bf16, "cuda", log=False)
        backbone, tok = load_backbone(str(model_dir), torch.bfloat16 if cuda_bf16 else torch.float32)
        net = _net_class()(backbone, len(head["feature_names"]))
        with torch.no_grad():
            net.feature_head.weight.copy_(torch.tensor([head["feature_weights"]], dtype=torch.float32))
        return cls(net, tok, cfg, bool(head["visible_whitespace"]), tuple(head["feature_names"]))

    from_pretrained = load

    def save(self, model_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the backbone (LoRA merged) with `save_pretrained`, the tokenizer and the feature head."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        if hasattr(self.net.backbone, "merge_and_unload"):
            self.net.backbone = self.net.backbone.merge_and_unload()
        self.net.backbone.save_pretrained(model_dir)
        self.tokenizer.save_pretrained(model_dir)
        head = {"format": 1, "feature_names": list(self.feature_names),
                "feature_weights": self.net.feature_head.weight.detach().float()[0].tolist(),
                "visible_whitespace": self.visible_whitespace, "config": self.cfg.to_dict(),
                "precision": {"bf16_setting": self.cfg.bf16, "trained_with": self.precision, "device": self.device,
                              "reason": native_bf16(self.device)[1], "consensus_runtime": self.embedder_runtime},
                **(extra or {})}
        (model_dir / HEAD_FILE).write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
        return model_dir

    def text(self, problem: Problem, sample: Sample) -> str:
        """What the backbone reads: (prompt +) completion, whitespace made visible when the tokenizer drops it."""
        code = sample.completion if self.cfg.completion_only else (sample.prompt or problem.prompt) + sample.completion
        return encode_whitespace(code) if self.visible_whitespace else code

    def tokenize(self, problems: ProblemSet, samples: list[Sample]) -> list[list[int]]:
        problems, samples = _check_ids(problems, samples)
        texts = [self.text(problems[s.problem_key], s) for s in samples]
        ids = self.tokenizer(texts, truncation=True, max_length=self.cfg.max_length)["input_ids"] if texts else []
        # tokenizers without special tokens (GPT-2, Llama) give an empty completion no tokens at all; a batch of
        # only such rows has width 0, which decoders cannot reshape: read them as one end-of-text token
        return [s if s else [self._empty_token] for s in ids]

    @property
    def _empty_token(self) -> int:
        eos = self.tokenizer.eos_token_id
        return int(eos if eos is not None else self.tokenizer.pad_token_id)

    def features(self, problems: ProblemSet, samples: list[Sample], progress: bool = False,
                 generated_tests: dict[str, list[str]] | None = None, exec_cfg=None) -> np.ndarray:
        """Consensus features of every candidate among its problem's candidates, plus, for a model that uses
        them, execution features from running the candidates on `generated_tests` (see features.py)."""
        problems, samples = _check_ids(problems, samples)
        embed = self.embedder
        feats = candidate_features(problems, samples, embed, progress)
        if not self.uses_execution:
            return feats
        from rewardranker.reward.agreement import AgreementConfig, passed_sets

        missing = sorted({s.problem_id for s in samples} - set(generated_tests or {}))
        if missing:
            raise RewardRankerError(f"this reward model reads execution features: it needs generated_tests for "
                                    f"every problem (none for {len(missing)}, e.g. {missing[0]!r}); use a "
                                    "reranking-layout file that has them, or a model trained without them")
        agr = AgreementConfig()
        sets = passed_sets(problems, samples, generated_tests, agr, exec_cfg, progress)
        return np.concatenate([feats, execution_features(samples, sets)], axis=1)

    @property
    def embedder(self):
        """The consensus embedder of this model's settings (shared within the process)."""
        return get_embedder(self.cfg.consensus, self.bf16, self.cfg.int8, self.embedder_runtime or "torch",
                            self.cfg.consensus_max_length)

    @property
    def embedder_runtime(self) -> str | None:
        """What runs the consensus MiniLM: torch | onnx (None: no MiniLM consensus)."""
        if self.cfg.consensus != "minilm":
            return None
        return resolve_runtime(self.cfg.runtime, "cpu", True, self.cfg.bf16, log=False)

    @property
    def encoder(self):
        """The cached frozen-backbone encoder (frozen models only)."""
        from rewardranker.reward.encoder import FrozenEncoder

        if self._encoder is None:
            self._encoder = FrozenEncoder(self.net.backbone, self.tokenizer.pad_token_id, self.bf16,
                                          self.cfg.int8, self.cfg.score_batch_size, self.device,
                                          runtime=self.runtime)
        return self._encoder

    def head_inputs(self, ids: list[list[int]], progress: bool = False) -> np.ndarray:
        """What the frozen backbone feeds its scalar head, per sequence (each distinct one encoded once)."""
        return self.encoder.encode(ids, progress, "reward backbone")[:, self.encoder.hidden:]

    def score(self, problems: ProblemSet, samples: list[Sample], batch_size: int | None = None,
              progress: bool = True, features: np.ndarray | None = None,
              generated_tests: dict[str, list[str]] | None = None, exec_cfg=None) -> list[float]:
        """One reward per sample, in the order of `samples` (consensus is computed among samples of a problem;
        `generated_tests` are needed by models that read execution features)."""
        if not samples:
            return []
        if features is None:
            features = self.features(problems, samples, progress, generated_tests, exec_cfg)
        feats = features
        if self.cfg.frozen and not self.cfg.uses_text_head:  # the reward is the feature head alone (no tokens)
            return self.score_frozen(None, feats)
        ids = self.tokenize(problems, samples)
        if self.cfg.frozen:
            return self.score_frozen(self.head_inputs(ids, progress), feats)
        return self.score_tokens(ids, feats, batch_size or self.cfg.score_batch_size, progress)

    def score_frozen(self, head_in: np.ndarray | None, feats: np.ndarray) -> list[float]:
        """Scalar head on cached backbone outputs (None: no text head) + feature head."""
        from rewardranker.reward.encoder import score_linear

        torch = _torch()
        with torch.no_grad():
            f = torch.tensor(feats, dtype=torch.float32, device=self.device)
            r = self.net.feature_head.to(self.device)(f)[:, 0]
            if head_in is not None:
                x = torch.tensor(head_in, dtype=torch.float32, device=self.device)
                r = r + score_linear(self.net.backbone).float()(x)[:, 0]
        return r.cpu().double().tolist()

    def score_tokens(self, ids: list[list[int]], feats: np.ndarray, batch_size: int, progress: bool) -> list[float]:
        """Batched forward passes of a trained backbone, shortest sequences first (less padding)."""
        torch = _torch()
        self.net.to(self.device).eval()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros(len(ids), dtype=np.float64)
        starts = range(0, len(order), batch_size)
        for start in track(starts, "scoring candidates", progress, total=len(starts), unit="batches"):
            idx = order[start:start + batch_size]
            batch = pad_batch([ids[i] for i in idx], self.tokenizer.pad_token_id, self.device)
            f = torch.tensor(feats[idx], dtype=torch.float32, device=self.device)
            with torch.no_grad(), autocast(self.bf16, self.device):
                out[idx] = self.net(batch["input_ids"], batch["attention_mask"], f).float().cpu().numpy()
        return out.tolist()


def _check_ids(problems: ProblemSet, samples: list[Sample]) -> tuple[ProblemSet, list[Sample]]:
    """Problems keyed by (language, problem_id), and the samples with their languages filled in (each sample's
    problem must exist: by language and id, or by id alone when that names one problem)."""
    problems = index_problems(problems)
    if all(s.problem_key in problems for s in samples):
        return problems, samples
    unknown = sorted({s.problem_id for s in samples if s.problem_key not in problems
                      and (s.language or not problems.languages_of(s.problem_id))})
    if unknown:
        known = [f"{lang}/{pid}" for lang, pid in sorted(problems)[:3]]
        raise RewardRankerError(f"{len(unknown)} candidate problem ids match no problem, e.g. {unknown[0]!r} "
                                f"(known: {', '.join(known)}{', ...' if len(problems) > 3 else ''})")
    return problems, resolve_languages(samples, problems)
