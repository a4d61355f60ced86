"""Helpers for the serving tests: a tiny generator, a reward model trained here, servers on free ports."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import torch

from rewardranker.records import Problem, Sample

torch.set_num_threads(1)  # tiny models gain nothing from more threads on the shared 2-core box

CORPUS = [f"def f{i}(x):\n    return x + {i}\n\n# add {i} to a number\n" for i in range(60)]
GOOD = "    return x + 1\n"  # passes `assert f(1) == 2`
BAD = "    return x - 1\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toy_rm_data(n_problems: int = 10, seed: int = 0):
    """Problems whose passing candidates add and failing ones subtract: learnable from the text alone."""
    rng = random.Random(seed)
    problems, samples, passed = {}, [], {}
    for p in range(n_problems):
        pid = f"toy/{p}"
        problems[pid] = Problem(pid, "py", f"def f{p}(x):\n", "assert True\n")
        bodies = [(f"    return x + {rng.randint(1, 9)}\n", True) for _ in range(3)]
        bodies += [(f"    return x - {rng.randint(1, 9)}\n", False) for _ in range(3)]
        rng.shuffle(bodies)
        for i, (body, ok) in enumerate(bodies):
            samples.append(Sample(pid, i, body, language="py"))
            passed[("py", pid, i)] = ok
    return problems, samples, passed


def build_models(root: Path) -> tuple[Path, Path]:
    """(generator folder, reward-model folder): the embedded tiny GPT-2 and an RM trained on the toy task."""
    from rewardranker.generation import build_local_generator
    from rewardranker.reward import RewardConfig, train_reward_model

    gen = build_local_generator(CORPUS, root / "gen", arch="gpt2", size="tiny", seed=0)
    problems, samples, passed = toy_rm_data()
    cfg = RewardConfig(backbone=str(gen), max_length=64, batch_size=8, lr=3e-3, head_lr=1e-2, epochs=5.0,
                       train_top_layers=-1, consensus="none", bf16=False)
    rm = train_reward_model(cfg, problems, samples, passed, root / "rm", progress=False)
    return gen, Path(rm)


class ThreadServer:
    """`rewardranker serve` (the real uvicorn server) in a thread of this process."""

    def __init__(self, cfg):
        from rewardranker.serve.run import build_server

        self.cfg = cfg
        self.server = build_server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{cfg.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


class ScriptedUpstream:
    """An OpenAI-compatible /v1/completions server that answers from a fixed list of texts, in turn."""

    def __init__(self, texts: list[str], delay_s: float = 0.0):
        self.texts, self.delay_s, self.calls, self.lock = list(texts), delay_s, 0, threading.Lock()
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer.lock:
                    text = outer.texts[outer.calls % len(outer.texts)]
                    outer.calls += 1
                    outer.bodies.append({**body, "path": self.path})
                time.sleep(outer.delay_s)
                choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                          if self.path.endswith("/chat/completions") else
                          {"index": 0, "text": text, "finish_reason": "stop"})
                data = json.dumps({"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
