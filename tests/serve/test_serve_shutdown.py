"""`rewardranker serve` as a process: start-up from the CLI, access log, graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
from serve_helpers import free_port

SLOW = "import time\ntime.sleep(2)\nprint('done')\n"


def test_sigterm_finishes_the_in_flight_request_then_exits_cleanly(models, exec_cache, tmp_path):
    gen, rm = models
    port = free_port()
    cmd = [sys.executable, "-m", "rewardranker", "serve", "--model", str(rm), "--generator", str(gen),
           "--port", str(port), "--threads", "1", "--cache", str(tmp_path / "cache.sqlite")]
    with open(tmp_path / "server.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stderr=log, stdout=log, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        result: dict = {}

        def slow_call() -> None:
            result["r"] = httpx.post(url + "/v1/execute", timeout=60, json={
                "programs": [{"language": "py", "program": SLOW}], "timeout_s": 10})

        caller = threading.Thread(target=slow_call)
        caller.start()
        deadline = time.monotonic() + 60
        while "rewardranker_in_flight 1.0" not in httpx.get(url + "/metrics", timeout=5).text:
            assert time.monotonic() < deadline, "the slow request never arrived"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # while the program runs in the sandbox
        refused, deadline = False, time.monotonic() + 20
        while not refused and time.monotonic() < deadline:
            try:
                httpx.get(url + "/health", timeout=2)
                time.sleep(0.1)
            except httpx.TransportError:
                refused = True
        caller.join(timeout=60)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert refused  # no new connections once shutting down
    r = result["r"]
    assert r.status_code == 200
    verdict = r.json()["verdicts"][0]
    assert verdict["status"] == "OK" and verdict["stdout"] == "done\n"
    lines = [json.loads(x) for x in (tmp_path / "server.log").read_text().splitlines() if x.startswith("{")]
    assert {"rid", "method", "path", "status", "ms"} <= set(lines[-1])
    assert any(x["path"] == "/v1/execute" and x["status"] == 200 and x["programs"] == 1 for x in lines)
