"""Run a frozen backbone on ONNX Runtime (CPU): exported once per backbone weights, reused across runs.

The export wraps the same computation as `FrozenEncoder`'s torch path (the model's forward, read through hooks on
the backbone and the scalar head, then mean pooling + L2 normalisation and, for decoders, the last real token), so
one ONNX graph maps (input_ids, attention_mask) to [consensus embedding | head input]. The file is written next
to the encoding cache (`onnx/<body fingerprint>-<fp32|int8>.onnx`), through a temporary file and a rename, so
processes that start at once never read half a file. BERT-type graphs get ONNX Runtime's transformer fusions
(`onnxruntime.transformers.optimizer`, model_type "bert"); `int8` adds ONNX Runtime's dynamic int8 quantisation.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

BERT_LIKE = ("bert",)  # model types ONNX Runtime's "bert" optimiser fuses (attention, LayerNorm, GELU)


def available() -> tuple[bool, str]:
    """(whether onnxruntime can be imported, its version or the reason it cannot)."""
    try:
        import onnxruntime
    except ImportError as e:  # also what a mocked-away module raises
        return False, f"onnxruntime cannot be imported ({e})"
    return True, f"onnxruntime {onnxruntime.__version__}"


def model_path(folder: Path, fingerprint: str, int8: bool) -> Path:
    return Path(folder) / "onnx" / f"{fingerprint}-{'int8' if int8 else 'fp32'}.onnx"


def _wrapper(model):
    """An nn.Module: (input_ids, attention_mask) -> (embedding, head input), as `encoder.pooled_rows`."""
    import torch

    from rewardranker.reward.encoder import pooled_rows

    class Encode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return pooled_rows(self.model, input_ids, attention_mask)

    return Encode().eval()


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def export(model, pad_id: int, path: Path) -> Path:
    """Export (legacy TorchScript exporter), fuse (BERT types), write `path` atomically."""
    import torch

    model = model.float().eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [5, 6, 7, pad_id, pad_id, pad_id]], dtype=torch.long)
    ids = ids.clamp(max=model.config.vocab_size - 1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.long)
    raw = _atomic_target(path)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent Python branches
            torch.onnx.export(_wrapper(model), (ids, mask), str(raw), dynamo=False, opset_version=17,
                              input_names=["input_ids", "attention_mask"], output_names=["embedding", "head_input"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "embedding": {0: "batch"}, "head_input": {0: "batch"}})
        if getattr(model.config, "model_type", "") in BERT_LIKE:
            _fuse_bert(raw, model.config)
        os.chmod(raw, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(raw, path)
    finally:
        raw.unlink(missing_ok=True)
    return path


def _fuse_bert(file: Path, config) -> None:
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    opt = optimize_model(str(file), model_type="bert", num_heads=int(config.num_attention_heads),
                         hidden_size=int(config.hidden_size), opt_level=0)
    opt.save_model_to_file(str(file))


def quantise(src: Path, path: Path) -> Path:
    """ONNX Runtime dynamic int8 quantisation of `src`'s MatMuls, written atomically to `path`."""
    import logging

    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "consider pre-processing"
    tmp = _atomic_target(path)
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class OnnxEncoder:
    """An ONNX Runtime session of the exported backbone: `run(input_ids, attention_mask)` -> [emb | head input]."""

    def __init__(self, model, pad_id: int, fingerprint: str, folder: Path, int8: bool = False,
                 threads: int | None = None):
        import onnxruntime as ort
        import torch

        self.path = model_path(folder, fingerprint, int8)
        self.exported = False
        if not self.path.exists():
            fp32 = model_path(folder, fingerprint, False)
            if not fp32.exists():
                export(model, pad_id, fp32)
                self.exported = True
            if int8:
                quantise(fp32, self.path)
                self.exported = True
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()  # the same threads as the torch path
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        # no busy-waiting between ops: on a shared 2-core box spinning threads burn the other jobs' CPU (measured
        # under load: 88 vs 59-70 sequences per CPU-second, and faster in wall time too)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def run(self, seqs: list[list[int]], pad_id: int) -> np.ndarray:
        from rewardranker.reward.encoder import pad_batch

        feed = {name: t.numpy() for name, t in pad_batch(seqs, pad_id).items()}
        emb, head_in = self.session.run(None, feed)
        return np.concatenate([emb, head_in], axis=1).astype(np.float32, copy=False)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
