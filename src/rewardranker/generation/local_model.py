"""Build the embedded small generator: a byte-level BPE tokenizer trained on the task texts plus a randomly
initialised GPT-2 or Llama model built from a config, both saved with `save_pretrained`.

Nothing is downloaded: this is the CPU default that SFT then teaches the procedural task suite. The same
architecture classes (GPT2LMHeadModel, LlamaForCausalLM) back the paper's real generators, so code tested on
these tiny models runs unchanged on hub checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from rewardranker.errors import ConfigError
from rewardranker.runio import write_json

EOS, PAD = "<|endoftext|>", "<|pad|>"
SIZES = {  # (layers, hidden, heads); "tiny" trains in seconds per epoch on 2 CPU cores
    "tiny": (2, 128, 4),
    "small": (4, 256, 4),
    "base": (6, 384, 6),
}
ARCHS = ("gpt2", "llama")


def train_tokenizer(texts: list[str], vocab_size: int = 2048, max_length: int = 512):
    """Train a byte-level BPE tokenizer on `texts` (well under a second); eos id 0, pad id 1, left padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ConfigError("texts", "is empty: the tokenizer needs some text to learn merges from")
    tok = Tokenizer(models.BPE())
    # a newline is always its own token, so a prompt ending in "\n" tokenizes as a prefix of prompt+solution
    # (otherwise "\n" merges with the next line's indentation and SFT trains on a context inference never sees)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=max_length)
    fast.padding_side = "left"  # decoder-only batched generation needs the prompt flush against the output
    return fast


def model_config(arch: str, size: str, vocab_size: int, eos_id: int, pad_id: int, max_positions: int = 512):
    """A transformers config for a randomly initialised causal LM of the given class and size."""
    from transformers import GPT2Config, LlamaConfig

    if arch not in ARCHS:
        raise ConfigError("arch", f"= {arch!r} is not one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise ConfigError("size", f"= {size!r} is not one of {', '.join(SIZES)}")
    layers, hidden, heads = SIZES[size]
    ids = dict(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=pad_id)  # inside the vocab (not 50256)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_positions=max_positions, n_embd=hidden, n_layer=layers,
                          n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=max_positions, tie_word_embeddings=True, **ids)


def build_local_generator(texts: list[str], out_dir: Path, arch: str = "gpt2", size: str = "tiny",
                          seed: int = 0, vocab_size: int = 2048, max_positions: int = 512) -> Path:
    """Train a tokenizer on `texts` and save it with a randomly initialised `arch` model of `size`.

    Example:
        >>> d = build_local_generator([p.prompt + p.canonical_solution for p in probs], Path("runs/gen0"))
        >>> run_sft(SFTConfig(), str(d), examples, Path("runs/sft"))
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    out_dir = Path(out_dir)
    tok = train_tokenizer(texts, vocab_size=vocab_size, max_length=max_positions)
    cfg = model_config(arch, size, len(tok), tok.eos_token_id, tok.pad_token_id, max_positions)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config = GenerationConfig(bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    write_json(out_dir / "rewardranker_build.json", {"arch": arch, "size": size, "seed": seed,
                                                     "vocab_size": len(tok), "n_texts": len(texts),
                                                     "parameters": sum(p.numel() for p in model.parameters())})
    return out_dir
