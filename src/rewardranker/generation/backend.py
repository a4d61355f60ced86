"""The narrow interface every sampling backend implements, and the records it exchanges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rewardranker.runio import content_hash


@dataclass(frozen=True)
class Request:
    """One sample to draw: its key, the prompt, where to stop, and its own seed."""

    problem_id: str
    sample_id: int
    prompt: str
    stop: tuple[str, ...]
    seed: int
    language: str = ""  # with problem_id, names the problem (MultiPL-E reuses ids across languages)


@dataclass(frozen=True)
class Generation:
    """The raw (untruncated) text a backend produced, with its tokens' log-probs when the backend has them."""

    text: str
    logprobs: list[float] | None
    n_tokens: int


class Backend(Protocol):
    def generate(self, requests: list[Request]) -> list[Generation]:
        """Draw one generation per request, in the same order."""
        ...

    def close(self) -> None:
        """Release the model or connections."""
        ...


def sample_seed(seed: int, problem_id: str, sample_id: int) -> int:
    """A per-sample seed. The openai and vllm backends seed each sample with it, so a resumed run draws exactly
    what an uninterrupted one would; hf seeds a batch with its first request's seed, so a resumed hf run is
    deterministic but its refilled samples can differ from an uninterrupted run's."""
    return int(content_hash(str(seed), problem_id, str(sample_id))[:8], 16)


def make_backend(cfg) -> Backend:
    """Instantiate the backend `cfg.backend` names; heavy imports happen only for the chosen one."""
    if cfg.backend == "hf":
        from rewardranker.generation.hf import HFBackend

        return HFBackend(cfg)
    if cfg.backend == "openai":
        from rewardranker.generation.openai_server import OpenAIBackend

        return OpenAIBackend(cfg)
    from rewardranker.generation.vllm_backend import VLLMBackend

    return VLLMBackend(cfg)
