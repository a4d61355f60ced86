"""vLLM in process, for GPU users who installed the `vllm` extra (it is optional and never required)."""

from __future__ import annotations

from rewardranker.errors import RewardRankerError
from rewardranker.generation.backend import Generation, Request
from rewardranker.generation.config import GenerationConfig


class VLLMBackend:
    """One `LLM.generate` call per chunk; each request carries its own seed through SamplingParams."""

    def __init__(self, cfg: GenerationConfig):
        try:
            from vllm import LLM
        except ImportError:  # pragma: no cover - vllm is not installable on the CPU development machines
            raise RewardRankerError("backend 'vllm' needs the vllm package: pip install 'rewardranker[vllm]' "
                                    "(GPU only), or use --backend hf or --backend openai") from None
        self.cfg = cfg  # pragma: no cover
        dtype = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[cfg.precision]
        self.llm = LLM(model=cfg.model, seed=cfg.seed, dtype=dtype)  # pragma: no cover

    def generate(self, requests: list[Request]) -> list[Generation]:  # pragma: no cover
        from vllm import SamplingParams

        params = [SamplingParams(n=1, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                 max_tokens=self.cfg.max_new_tokens, stop=list(r.stop) or None, seed=r.seed,
                                 logprobs=0 if self.cfg.logprobs else None) for r in requests]
        outs = self.llm.generate([r.prompt for r in requests], params, use_tqdm=False)
        return [_to_generation(o.outputs[0]) for o in outs]

    def close(self) -> None:
        self.llm = None


def _to_generation(out) -> Generation:  # pragma: no cover
    lps = None
    if out.logprobs is not None:
        lps = [step[tok].logprob for tok, step in zip(out.token_ids, out.logprobs)]
    # vLLM strips the matched stop string itself; truncation downstream is then a no-op
    return Generation(text=out.text, logprobs=lps, n_tokens=len(out.token_ids))
