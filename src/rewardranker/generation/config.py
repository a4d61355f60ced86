"""GenerationConfig: which backend samples, from which model, how many samples and how."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rewardranker.errors import ConfigError

BACKENDS = ("hf", "openai", "vllm")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class GenerationConfig:
    # what samples
    backend: str = field(default="hf", metadata={"help": "hf (transformers, in process), openai (an "
                                                         "OpenAI-compatible completions server) or vllm"})
    model: str = field(default="", metadata={"help": "model folder or hub id (for openai: the served name)"})
    # how many and how
    n: int = field(default=1, metadata={"help": "samples per problem"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature; 0 means greedy"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass in (0, 1]"})
    max_new_tokens: int = field(default=256, metadata={"help": "new tokens per sample at most"})
    seed: int = field(default=0, metadata={"help": "random seed; the same seed gives the same samples"})
    batch_size: int = field(default=16, metadata={"help": "sequences per generate call (hf, vllm)"})
    logprobs: bool = field(default=True, metadata={"help": "record the sampled tokens' log-probabilities"})
    # hf / vllm
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:1, ... (hf)"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on a GPU that has it, else fp32), "
                                                             "fp32, bf16 or fp16"})
    # openai-compatible server
    base_url: str = field(default="http://127.0.0.1:8000/v1", metadata={"help": "server URL up to /v1"})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "environment variable holding "
                                                                         "the API key (unset: no key sent)"})
    concurrency: int = field(default=8, metadata={"help": "requests in flight at once"})
    retries: int = field(default=3, metadata={"help": "retries per request on a server error or timeout"})
    timeout_s: float = field(default=60.0, metadata={"help": "seconds before a request counts as timed out"})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError("backend", f"= {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if not self.model:
            raise ConfigError("model", "is empty: give a model folder, a hub id or the served model name")
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", f"= {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        _positive(self, "n", "max_new_tokens", "batch_size", "concurrency")
        _positive(self, "timeout_s")
        if self.temperature < 0:
            raise ConfigError("temperature", f"= {self.temperature} must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", f"= {self.top_p} must be in (0, 1]")
        if self.retries < 0:
            raise ConfigError("retries", f"= {self.retries} must be >= 0")
        if self.backend == "openai":
            _check_base_url(self.base_url)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_base_url(url: str) -> None:
    """A server URL needs a scheme and a host: a mistake here is reported at once, never retried."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("base_url", f"= {url!r} needs http:// or https:// and a host, e.g. "
                                      "http://127.0.0.1:8000/v1")


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not value > 0:
            raise ConfigError(name, f"= {value!r} must be > 0")


def resolve_device_dtype(device: str, precision: str):
    """Map the config's device/precision strings to torch objects (auto: the GPU when present, bf16 there)."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if precision == "auto":
        gpu_bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()
        precision = "bf16" if gpu_bf16 else "fp32"
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return dev, dtype


def config_from_yaml(cls: type, path: Path | None, **overrides: Any):
    """Build a stage Config from a YAML mapping of its fields (optional), then the given overrides on top.

    Overrides that are None are ignored, so CLI options left unset keep the file's (or the default) value.
    """
    import yaml

    known = {f.name for f in fields(cls)}
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError("config", f"cannot read {path}: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError("config", "must be a mapping of field: value", source=path)
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise ConfigError(unknown[0], f"is not a {cls.__name__} field (known: {', '.join(sorted(known))})",
                              source=path)
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigError("config", str(e), source=path) from None
