"""`rewardranker serve`: best-of-N behind an OpenAI-compatible API, plus the executor and the reward model as
services for RL trainers.

Modules: `engine` (sampling, execution, scoring, ranking; ServeConfig), `app` (the FastAPI routes, errors,
queue, timeouts), `schemas` (request bodies), `metrics` (Prometheus + access log), `adapters` (verl, OpenRLHF
and TRL reward functions), `run` (uvicorn start-up and graceful shutdown).
"""

from rewardranker.serve.engine import ServeConfig

__all__ = ["ServeConfig"]
