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
from rewardranker.reward.encoding import encode_whitespace, tokenizer_keeps_whitespace
from rewardranker.reward.features import FEATURE_NAMES, candidate_features, tfidf_embedder
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
    """Mean-pooled, L2-normalised sentence embeddings from the packaged MiniLM (bf16 autocast on CPU)."""

    def __init__(self, max_length: int = 256, batch_size: int = 32, bf16: bool = True):
        from transformers import AutoModel, AutoTokenizer

        path = default_backbone()
        self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.max_length, self.batch_size, self.bf16 = max_length, batch_size, bf16

    def __call__(self, texts: list[str]) -> np.ndarray:
        torch = _torch()
        uniq = sorted(set(texts), key=len)
        vecs: dict[str, np.ndarray] = {}
        for i in range(0, len(uniq), self.batch_size):
            chunk = uniq[i:i + self.batch_size]
            b = self.tok(chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.no_grad(), autocast(self.bf16):
                h = self.model(**b).last_hidden_state.float()
            m = b["attention_mask"].unsqueeze(-1).float()
            e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)
            vecs.update(zip(chunk, e.numpy()))
        return np.stack([vecs[t] for t in texts])


_EMBEDDERS: dict[str, Any] = {}


def get_embedder(kind: str):
    """The consensus embedder for `kind` (minilm | tfidf | none), loaded once per process."""
    if kind == "none":
        return None
    if kind == "tfidf":
        return tfidf_embedder
    if kind not in _EMBEDDERS:
        _EMBEDDERS[kind] = MiniLMEmbedder()
    return _EMBEDDERS[kind]


class RewardModel:
    """A trained (or freshly built) reward model: scores candidates, saves and loads as a folder."""

    def __init__(self, net, tokenizer, cfg: RewardConfig, visible_whitespace: bool):
        self.net, self.tokenizer, self.cfg = net, tokenizer, cfg
        self.visible_whitespace = visible_whitespace

    @property
    def device(self) -> str:
        return "cuda" if _torch().cuda.is_available() else "cpu"

    @classmethod
    def build(cls, cfg: RewardConfig) -> RewardModel:
        """A new model from `cfg.backbone` with freshly initialised heads, frozen/LoRA-wrapped as configured."""
        torch = _torch()
        dtype = torch.bfloat16 if cfg.bf16 and torch.cuda.is_available() else torch.float32
        backbone, tok = load_backbone(cfg.backbone_path, dtype)
        if cfg.lora:
            backbone = apply_lora(backbone, cfg)
        else:
            freeze_lower_layers(backbone, cfg.top_layers)
        visible = cfg.whitespace == "visible" or (cfg.whitespace == "auto" and not tokenizer_keeps_whitespace(tok))
        return cls(_net_class()(backbone, len(FEATURE_NAMES)), tok, cfg, visible)

    @classmethod
    def load(cls, model_dir: str | Path) -> RewardModel:
        """Load a folder written by `save` (the backbone through `from_pretrained`)."""
        torch = _torch()
        model_dir = Path(model_dir)
        head_file = model_dir / HEAD_FILE
        if not head_file.exists():
            raise RewardRankerError(f"{model_dir}: not a reward-model folder ({HEAD_FILE} is missing); "
                                    "train one with `rewardranker train-rm`")
        head = json.loads(head_file.read_text(encoding="utf-8"))
        cfg = RewardConfig.from_dict(head["config"], head_file)
        dtype = torch.bfloat16 if cfg.bf16 and torch.cuda.is_available() else torch.float32
        backbone, tok = load_backbone(str(model_dir), dtype)
        net = _net_class()(backbone, len(head["feature_names"]))
        with torch.no_grad():
            net.feature_head.weight.copy_(torch.tensor([head["feature_weights"]], dtype=torch.float32))
        return cls(net, tok, cfg, bool(head["visible_whitespace"]))

    def save(self, model_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write the backbone (LoRA merged) with `save_pretrained`, the tokenizer and the feature head."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        if hasattr(self.net.backbone, "merge_and_unload"):
            self.net.backbone = self.net.backbone.merge_and_unload()
        self.net.backbone.save_pretrained(model_dir)
        self.tokenizer.save_pretrained(model_dir)
        head = {"format": 1, "feature_names": list(FEATURE_NAMES),
                "feature_weights": self.net.feature_head.weight.detach().float()[0].tolist(),
                "visible_whitespace": self.visible_whitespace, "config": self.cfg.to_dict(), **(extra or {})}
        (model_dir / HEAD_FILE).write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
        return model_dir

    def text(self, problem: Problem, sample: Sample) -> str:
        """What the backbone reads: prompt + completion, whitespace made visible when the tokenizer drops it."""
        code = (sample.prompt or problem.prompt) + sample.completion
        return encode_whitespace(code) if self.visible_whitespace else code

    def tokenize(self, problems: ProblemSet, samples: list[Sample]) -> list[list[int]]:
        problems, samples = _check_ids(problems, samples)
        texts = [self.text(problems[s.problem_key], s) for s in samples]
        return self.tokenizer(texts, truncation=True, max_length=self.cfg.max_length)["input_ids"]

    def features(self, problems: ProblemSet, samples: list[Sample], progress: bool = False) -> np.ndarray:
        """Consensus features of every candidate among its problem's candidates (see features.py)."""
        problems, samples = _check_ids(problems, samples)
        return candidate_features(problems, samples, get_embedder(self.cfg.consensus), progress)

    def score(self, problems: ProblemSet, samples: list[Sample], batch_size: int | None = None,
              progress: bool = True, features: np.ndarray | None = None) -> list[float]:
        """One reward per sample, in the order of `samples` (consensus is computed among samples of a problem)."""
        if not samples:
            return []
        feats = self.features(problems, samples, progress) if features is None else features
        ids = self.tokenize(problems, samples)
        return self.score_tokens(ids, feats, batch_size or self.cfg.score_batch_size, progress)

    def score_tokens(self, ids: list[list[int]], feats: np.ndarray, batch_size: int, progress: bool) -> list[float]:
        """Batched forward passes, shortest sequences first (less padding)."""
        torch = _torch()
        self.net.to(self.device).eval()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros(len(ids), dtype=np.float64)
        starts = range(0, len(order), batch_size)
        for start in track(starts, "scoring candidates", progress, total=len(starts)):
            idx = order[start:start + batch_size]
            batch = pad_batch([ids[i] for i in idx], self.tokenizer.pad_token_id, self.device)
            f = torch.tensor(feats[idx], dtype=torch.float32, device=self.device)
            with torch.no_grad(), autocast(self.cfg.bf16, self.device):
                out[idx] = self.net(batch["input_ids"], batch["attention_mask"], f).float().cpu().numpy()
        return out.tolist()


def pad_batch(seqs: list[list[int]], pad_id: int, device: str = "cpu") -> dict[str, Any]:
    """Right-pad token lists into input_ids / attention_mask tensors."""
    torch = _torch()
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


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
