"""Sampling with transformers in process: local folder or hub id, CPU or GPU, batched, left-padded."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from rewardranker.errors import RewardRankerError
from rewardranker.generation.backend import Generation, Request
from rewardranker.generation.config import GenerationConfig, resolve_device_dtype


def load_causal_lm(model: str, device: str = "auto", precision: str = "auto"):
    """Load (model, tokenizer) for generation; the tokenizer pads on the left and has a pad token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev, dtype = resolve_device_dtype(device, precision)
    if str(model).startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise RewardRankerError(f"{model}: no such model folder (build one with `rewardranker build-generator`)")
    try:
        tok = AutoTokenizer.from_pretrained(model)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(dev)
    except (OSError, ValueError) as e:  # ValueError: huggingface_hub's invalid repo id
        raise RewardRankerError(f"{model}: cannot load a causal LM and tokenizer ({e})") from None
    tok.padding_side = "left"
    if tok.pad_token is None:  # Llama-family tokenizers ship without one
        tok.pad_token = tok.eos_token
    lm.eval()
    return lm, tok


class HFBackend:
    """Batched `model.generate`; requests sharing stop tokens go in one call so stop strings end rows early."""

    def __init__(self, cfg: GenerationConfig):
        self.cfg = cfg
        self.model, self.tok = load_causal_lm(cfg.model, cfg.device, cfg.precision)

    def generate(self, requests: list[Request]) -> list[Generation]:
        out: dict[int, Generation] = {}
        order = sorted(range(len(requests)), key=lambda i: requests[i].stop)
        for stop, group in groupby(order, key=lambda i: requests[i].stop):
            idx = list(group)
            for start in range(0, len(idx), self.cfg.batch_size):
                chunk = idx[start:start + self.cfg.batch_size]
                gens = self._generate_batch([requests[i] for i in chunk], stop)
                out.update(zip(chunk, gens))
        return [out[i] for i in range(len(requests))]

    def _generate_batch(self, batch: list[Request], stop: tuple[str, ...]) -> list[Generation]:
        import torch

        torch.manual_seed(batch[0].seed)  # a batch is drawn from its first request's seed
        enc = self.tok([r.prompt for r in batch], return_tensors="pt", padding=True).to(self.model.device)
        out = generate_tokens(self.model, self.tok, enc, self.cfg, stop)
        new = out.sequences[:, enc["input_ids"].shape[1]:]  # (B, T)
        lengths = finished_lengths(new, self.tok)
        logps = chosen_logprobs(out.logits, new) if self.cfg.logprobs else None
        gens = []
        for b, n in enumerate(lengths.tolist()):
            text = self.tok.decode(new[b, :n], skip_special_tokens=True)
            lp = [round(x, 5) for x in logps[b, :n].tolist()] if logps is not None else None
            gens.append(Generation(text=text, logprobs=lp, n_tokens=n))
        return gens

    def close(self) -> None:
        self.model = None


def generate_tokens(model, tok, enc, cfg, stop: tuple[str, ...]):
    """Call `generate` with the config's sampling settings, stopping rows at `stop` strings or EOS."""
    import torch

    sampling = cfg.temperature > 0
    kwargs = dict(do_sample=sampling, max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id,
                  eos_token_id=tok.eos_token_id, return_dict_in_generate=True, output_logits=cfg.logprobs)
    if sampling:
        kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tok)
    with torch.no_grad():
        return model.generate(**enc, **kwargs)


def finished_lengths(new_tokens, tok):
    """Tokens each row kept: up to and including the first EOS; pad (filled in after a stop) ends a row too."""
    import torch

    ends = (new_tokens == tok.eos_token_id) | (new_tokens == tok.pad_token_id)  # (B, T)
    width = ends.shape[1]
    first = torch.where(ends.any(1), ends.int().argmax(1), torch.full_like(ends[:, 0], width, dtype=torch.long))
    at_first = new_tokens.gather(1, first.clamp(max=width - 1)[:, None])[:, 0]  # (B,)
    # EOS is an action the model took (kept); pad is filler after a stop string (dropped)
    keep_eos = (first < width) & (at_first == tok.eos_token_id) & (tok.eos_token_id != tok.pad_token_id)
    return first + keep_eos.long()


def chosen_logprobs(logits: tuple, tokens):
    """Log-probability under the model (temperature 1, before top-p) of each sampled token: (B, T)."""
    import torch

    stacked = torch.stack(logits, dim=1).float()  # (B, T, V)
    return torch.log_softmax(stacked, -1).gather(-1, tokens[..., None])[..., 0]
