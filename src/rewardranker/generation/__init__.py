"""Samplers (transformers, an OpenAI-compatible server, vLLM) and the embedded small generator."""

from rewardranker.generation.config import GenerationConfig
from rewardranker.generation.local_model import build_local_generator
from rewardranker.generation.sample import sample_problems

__all__ = ["GenerationConfig", "build_local_generator", "sample_problems"]
