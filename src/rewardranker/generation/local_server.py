"""A minimal OpenAI-compatible /v1/completions server over a local transformers model (stdlib http.server).

For tests, benchmarks and demos of the `openai` backend without a GPU server; not for production serving.
`faults` injects failures for the next requests, in order: "error" answers HTTP 500 and "hang" waits `hang_s`
seconds (past the client's timeout) and then answers 504 without generating, so retry and timeout handling can
be exercised; any other entry (e.g. "ok") is a normal answer.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

from rewardranker.problems import truncate


class LocalCompletionServer:
    """Serve `model_dir` on 127.0.0.1; use as a context manager. `url` ends in /v1."""

    def __init__(self, model_dir: str, port: int = 0, faults: list[str] | None = None, hang_s: float = 5.0):
        from rewardranker.generation.hf import load_causal_lm

        self.model, self.tok = load_causal_lm(model_dir, device="cpu", precision="fp32")
        self.faults, self.hang_s = list(faults or []), hang_s
        self.lock = threading.Lock()  # one generate at a time: the model is shared
        self.requests = 0
        self.closing = threading.Event()  # wakes hung handlers at shutdown
        self.httpd = _JoiningServer(("127.0.0.1", port), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> LocalCompletionServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            return self.faults.pop(0) if self.faults else None

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one completions request (a single prompt, n=1)."""
        import torch

        from rewardranker.generation.hf import chosen_logprobs, finished_lengths, generate_tokens

        stop = tuple(body.get("stop") or ())
        cfg = SimpleNamespace(temperature=float(body.get("temperature", 1.0)), top_p=float(body.get("top_p", 1.0)),
                              max_new_tokens=int(body.get("max_tokens", 16)), logprobs=True)
        with self.lock:
            torch.manual_seed(int(body.get("seed") or 0))
            enc = self.tok([body["prompt"]], return_tensors="pt")
            out = generate_tokens(self.model, self.tok, enc, cfg, stop)
        new = out.sequences[:, enc["input_ids"].shape[1]:]
        n = int(finished_lengths(new, self.tok)[0])
        text = self.tok.decode(new[0, :n], skip_special_tokens=True)
        lps = chosen_logprobs(out.logits, new)[0, :n].tolist()
        choice = {"index": 0, "text": truncate(text, stop),  # like vLLM: the stop string is not returned
                  "logprobs": {"tokens": self.tok.convert_ids_to_tokens(new[0, :n].tolist()), "token_logprobs": lps},
                  "finish_reason": "length" if n >= cfg.max_new_tokens else "stop"}
        return {"object": "text_completion", "model": body.get("model", ""), "choices": [choice],
                "usage": {"prompt_tokens": enc["input_ids"].shape[1], "completion_tokens": n}}


class _JoiningServer(ThreadingHTTPServer):
    """Handler threads are joined on close, so none outlives the server (and none touches torch's RNG later)."""

    daemon_threads = False
    block_on_close = True


def _handler(server: LocalCompletionServer):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not self.path.endswith("/completions"):
                return self._send(404, {"error": f"no route {self.path}"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            fault = server.next_fault()
            if fault == "error":
                return self._send(500, {"error": "injected server error"})
            if fault == "hang":  # the client has given up by now; answering late must not touch the model
                server.closing.wait(server.hang_s)
                return self._send(504, {"error": "injected hang"})
            if "prompt" not in body:
                return self._send(400, {"error": "field 'prompt' is required"})
            self._send(200, server.complete(body))

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to do
                pass

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    return Handler
