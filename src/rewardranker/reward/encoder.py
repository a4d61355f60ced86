"""Run a frozen backbone once per distinct program, within a run and across runs.

Samples repeat (16,400 CodeGen-16B HumanEval samples hold 12,408 distinct programs), and a frozen backbone
gives the same output for the same tokens every time, so its outputs are stored in an SQLite file next to
the verdict cache (`encodings.sqlite` in the folder of $REWARDRANKER_CACHE, else ~/.cache/rewardranker), keyed
by a content hash of (backbone weights, head type, precision, token ids); the token ids already carry the text
and `max_length`. Each stored row holds the mean-pooled, L2-normalised last hidden state (the consensus
embedding) and the vector the model's scalar head reads (BERT: the pooler output; decoders: the last token's
hidden state). Rows are committed every couple of seconds, so a killed run keeps what it encoded.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardranker.errors import RewardRankerError
from rewardranker.reward.progress import Progress
from rewardranker.runio import open_shared_sqlite

_SCHEMA = "CREATE TABLE IF NOT EXISTS encodings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)"


def default_encoding_cache_path() -> Path:
    """encodings.sqlite next to the verdict cache ($REWARDRANKER_CACHE's folder, else ~/.cache/rewardranker)."""
    env = os.environ.get("REWARDRANKER_CACHE")
    folder = Path(env).parent if env else Path.home() / ".cache" / "rewardranker"
    return folder / "encodings.sqlite"


class EncodingCache:
    """key -> float32 vector, in SQLite (WAL, shared by processes); committed every `commit_every_s` or `_n` vectors."""

    def __init__(self, path: Path | None = None, commit_every_s: float = 2.0, commit_every_n: int = 64):
        self.path = Path(path) if path is not None else default_encoding_cache_path()
        self.db = open_shared_sqlite(self.path, _SCHEMA)
        self.commit_every_s, self.commit_every_n = commit_every_s, commit_every_n
        self._pending: list[tuple[str, int, bytes]] = []
        self._last = time.monotonic()

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            rows = self.db.execute(f"SELECT key, dim, vec FROM encodings WHERE key IN ({', '.join('?' * len(chunk))})",
                                   chunk).fetchall()
            for key, dim, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.size == dim:
                    out[key] = vec
        return out

    def put(self, key: str, vec: np.ndarray) -> None:
        vec = np.ascontiguousarray(vec, dtype=np.float32)
        self._pending.append((key, int(vec.size), vec.tobytes()))
        if len(self._pending) >= self.commit_every_n or time.monotonic() - self._last >= self.commit_every_s:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.db.execute("BEGIN IMMEDIATE")  # take the write lock now, waiting for it
            self.db.executemany("INSERT OR REPLACE INTO encodings (key, dim, vec) VALUES (?, ?, ?)", self._pending)
            self.db.execute("COMMIT")
            self._pending = []
        self._last = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.db.close()


def score_linear(model):
    """The model's scalar output layer (BERT `classifier`, GPT-2/Llama `score`): a Linear with one output."""
    import torch

    base = getattr(model, model.base_model_prefix, None)
    inside = {id(m) for m in base.modules()} if base is not None else set()
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1
             and id(m) not in inside]
    if len(heads) != 1:
        raise RewardRankerError(f"cannot find the scalar head of {type(model).__name__} (found {len(heads)})")
    return heads[0]


def body_fingerprint(model) -> str:
    """Content hash of everything but the scalar head (its weights are trained; the body is frozen)."""
    import torch

    head = {id(p) for p in score_linear(model).parameters()}
    h = hashlib.blake2b(type(model).__name__.encode(), digest_size=16)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if id(p) in head:
            continue
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pad_batch(seqs: list[list[int]], pad_id: int, device: str = "cpu") -> dict[str, Any]:
    """Right-pad token lists into input_ids / attention_mask tensors."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


class FrozenEncoder:
    """Encodes token sequences with a frozen seq-cls backbone: rows [consensus embedding | head input].

    `bf16` autocasts, `int8` runs a dynamically int8-quantised copy of the body (torch.ao, CPU only).
    `runtime="onnx"` (CPU) runs the body on ONNX Runtime instead (fp32, or ORT's dynamic int8 with `int8`; bf16 is
    not used there), exported once per backbone weights next to the encoding cache (onnx_backend.py); when the
    export or the session fails it falls back to torch and says why in one line on stderr.
    """

    def __init__(self, model, pad_id: int, bf16: bool = False, int8: bool = False, batch_size: int = 32,
                 device: str = "cpu", cache: EncodingCache | None | bool = True, runtime: str = "torch"):
        self.pad_id, self.bf16, self.batch_size, self.device = pad_id, bf16, batch_size, device
        self.int8 = int8 and device == "cpu"
        self.fingerprint = body_fingerprint(model)
        self.cache = EncodingCache() if cache is True else (cache or None)
        self.runtime, self.onnx = "torch", None
        if runtime == "onnx" and device == "cpu":
            self.onnx = _onnx_encoder(model, pad_id, self.fingerprint, self.int8,
                                      self.cache.path.parent if self.cache is not None else
                                      default_encoding_cache_path().parent)
            if self.onnx is not None:
                self.runtime, self.bf16 = "onnx", False
        self.precision = "int8" if self.int8 else "bf16" if self.bf16 else "fp32"
        self.model = _quantised(model) if self.int8 and self.onnx is None else model
        self._memory: dict[str, np.ndarray] = {}
        self.hidden = int(score_linear(self.model).in_features)
        self.stats = {"encoded": 0, "from_cache": 0}

    def key(self, ids: list[int]) -> str:
        # torch rows keep their old keys; ONNX Runtime's differ in the last bits, so they get their own
        tag = self.precision if self.runtime == "torch" else f"{self.runtime}-{self.precision}"
        h = hashlib.blake2b(f"{self.fingerprint}:{tag}:".encode(), digest_size=20)
        h.update(np.asarray(ids, dtype=np.int64).tobytes())
        return h.hexdigest()

    def encode(self, ids: list[list[int]], progress: bool = False, description: str = "encoding programs") -> np.ndarray:
        """[len(ids), 2 * hidden]: each distinct sequence runs at most once (memory, then disk, then the model).

        An empty sequence is read as one pad token (a batch of width 0 cannot run)."""
        ids = [s if len(s) else [self.pad_id] for s in ids]
        keys = [self.key(s) for s in ids]
        missing = [k for k in dict.fromkeys(keys) if k not in self._memory]
        if missing and self.cache is not None:
            found = self.cache.get_many(missing)
            self._memory.update(found)
            self.stats["from_cache"] += len(found)
        todo = {k: s for k, s in zip(keys, ids) if k not in self._memory}
        if todo:
            self._run(todo, progress, description)
        if not ids:
            return np.zeros((0, 2 * self.hidden), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys])

    def _run(self, todo: dict[str, list[int]], progress: bool, description: str) -> None:
        """Batches of similar length (little padding), longest first so the ETA is pessimistic."""
        order = sorted(todo, key=lambda k: len(todo[k]), reverse=True)
        if self.onnx is None:
            self.model.eval()
        try:
            with Progress(description, len(order), progress, unit="programs") as bar:
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start:start + self.batch_size]
                    rows = self._forward([todo[k] for k in chunk])
                    for k, row in zip(chunk, rows):
                        self._memory[k] = row
                        if self.cache is not None:
                            self.cache.put(k, row)
                    self.stats["encoded"] += len(chunk)
                    bar.advance(len(chunk))
        finally:
            if self.cache is not None:
                self.cache.flush()

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        import torch

        if self.onnx is not None:
            return self.onnx.run(seqs, self.pad_id)
        batch = pad_batch(seqs, self.pad_id, self.device)
        ctx = torch.autocast(self.device, dtype=torch.bfloat16) if self.bf16 else torch.autocast(
            self.device, enabled=False)
        with torch.no_grad(), ctx:
            emb, head_in = pooled_rows(self.model, batch["input_ids"], batch["attention_mask"])
        return torch.cat([emb, head_in], dim=1).cpu().numpy()


def pooled_rows(model, input_ids, attention_mask):
    """(mean-pooled L2-normalised backbone states, the scalar head's input) of a seq-cls model, in fp32.

    Read through hooks on the backbone and the head; decoders apply the head at every position, so their head
    input is the last real token's. Traceable: the ONNX export wraps this same function."""
    import torch

    head, base = score_linear(model), getattr(model, model.base_model_prefix)
    seen: dict[str, torch.Tensor] = {}
    hooks = [head.register_forward_hook(lambda _m, a, _o: seen.__setitem__("head", a[0])),
             base.register_forward_hook(lambda _m, _a, o: seen.__setitem__("hidden", _first(o)))]
    try:
        model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for h in hooks:
            h.remove()
    hidden = seen["hidden"].float()
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    emb = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)
    head_in = seen["head"].float()
    if head_in.dim() == 3:
        last = (attention_mask.sum(1) - 1).clamp_min(0)
        head_in = head_in.gather(1, last.view(-1, 1, 1).expand(-1, 1, head_in.shape[-1])).squeeze(1)
    return emb, head_in


def _onnx_encoder(model, pad_id: int, fingerprint: str, int8: bool, folder: Path):
    """An OnnxEncoder, or None (with the reason on stderr) when onnxruntime, the export or the session fails."""
    from rewardranker.reward import onnx_backend

    ok, why = onnx_backend.available()
    if not ok:
        onnx_backend.log(f"reward model runtime: torch ({why})")
        return None
    try:
        enc = onnx_backend.OnnxEncoder(model, pad_id, fingerprint, folder, int8)
    except Exception as e:  # noqa: BLE001 - any export/ORT failure: the torch path still works
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        onnx_backend.log(f"reward model runtime: torch (ONNX export/session failed: {type(e).__name__}: {first})")
        return None
    if enc.path not in _ONNX_LOGGED:
        _ONNX_LOGGED.add(enc.path)
        onnx_backend.log(f"reward model runtime: onnx ({why}, {'int8' if int8 else 'fp32'} whatever the torch "
                         f"precision above, "
                         f"{enc.session.get_session_options().intra_op_num_threads} threads; "
                         f"{'exported to' if enc.exported else 'reusing'} {enc.path})")
    return enc


_ONNX_LOGGED: set[Path] = set()


def _first(output):
    return output[0] if isinstance(output, tuple) else output.last_hidden_state


def _quantised(model):
    """A copy of `model` whose body's Linear layers run in dynamic int8 (the scalar head stays float)."""
    import warnings

    import torch

    model = copy.deepcopy(model).float()
    prefix = model.base_model_prefix
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's notice that eager quantisation is moving to torchao
        body = torch.ao.quantization.quantize_dynamic(getattr(model, prefix), {torch.nn.Linear}, dtype=torch.qint8)
    setattr(model, prefix, body)
    return model
