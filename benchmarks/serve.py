"""`rewardranker serve` under load: best-of-N latency and throughput against doing the same in the client, and
/v1/execute throughput against compiling every program from scratch.

    python benchmarks/serve.py [--n 1,4,16] [--concurrency 1,8,32] [--max-tokens 16] [--per-language 2]

Best-of-N, one run, side by side for every (N, concurrency):
- server: clients POST /v1/completions with `n_candidates: N` to `rewardranker serve --upstream`, which samples
  N completions from the upstream, scores them with the reward model and returns the best;
- direct: clients call the same upstream N times themselves (concurrently) and score the N candidates with the
  same reward model loaded in the client process, then take the best: the client-side equivalent.
The upstream is the embedded generator (tiny GPT-2) behind the project's local OpenAI-compatible server, in its
own process; the server runs in its own process too (the CLI); clients are threads of this process. Overhead =
server latency / direct latency (p50). Every request must come back 200 with an answer: failures are counted.

/v1/execute, one run, same programs (benchmarks/execution.py's programs for cpp, java, ts): one batch request
to the server (persistent compilers, C++ PCH; an empty verdict cache) against the baseline of MultiPL-E's plain
commands, one compiler process per program in a fresh sandbox (what SandboxFusion does per request).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "serve"))
sys.path.insert(0, str(REPO / "benchmarks"))

import httpx
from serve_helpers import build_models, free_port  # sets torch to 1 thread (a shared box)

PROMPTS = [f"def f{i}(x):\n" for i in range(64)]


def wait_healthy(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)  # any HTTP answer: it is listening (the upstream has no GET routes)
            return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what} did not start in {timeout_s} s")


def start_upstream(gen: Path, port: int, log) -> subprocess.Popen:
    code = ("import sys, time, torch; torch.set_num_threads(1)\n"
            "from rewardranker.generation import local_server\n"
            "from rewardranker.generation.local_server import LocalCompletionServer\n"
            # a listen backlog like a real inference server's (socketserver's default of 5 resets connections)
            "local_server._JoiningServer.request_queue_size = 1024\n"
            f"s = LocalCompletionServer({str(gen)!r}, port={port})\n"
            "s.__enter__()\nwhile True: time.sleep(3600)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)


def start_server(rm: Path, upstream: str, port: int, cache: Path, workers: int, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rewardranker", "serve", "--model", str(rm), "--upstream", upstream,
           "--upstream-model", "tiny", "--port", str(port), "--threads", "1", "--workers", str(workers),
           "--max-queue", "256", "--max-candidates", "64", "--cache", str(cache), "--exec-workers", "2"]
    return subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, "OMP_NUM_THREADS": "1"})


class Direct:
    """The client-side equivalent: N upstream calls, then the reward model in this process picks the best."""

    def __init__(self, rm_dir: Path, upstream: str, pool: ThreadPoolExecutor):
        from rewardranker.reward import RewardModel

        self.rm = RewardModel.load(rm_dir)
        self.url = upstream + "/completions"
        self.pool = pool
        self.http = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=1024))

    def one(self, prompt: str, seed: int, max_tokens: int) -> str:
        body = {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "top_p": 0.95,
                "seed": seed, "n": 1}
        r = self.http.post(self.url, json=body)
        r.raise_for_status()
        return r.json()["choices"][0]["text"]

    def best_of(self, prompt: str, n: int, seed: int, max_tokens: int) -> str:
        from rewardranker.records import Problem, Sample

        texts = list(self.pool.map(lambda i: self.one(prompt, seed * 1000 + i, max_tokens), range(n)))
        problems = {"q": Problem("q", "py", prompt, "")}
        scores = self.rm.score(problems, [Sample("q", i, t, language="py") for i, t in enumerate(texts)],
                               progress=False)
        return texts[max(range(n), key=lambda i: (scores[i], -i))]


def via_server(http: httpx.Client, url: str, prompt: str, n: int, seed: int, max_tokens: int) -> str:
    body = {"model": "tiny", "prompt": prompt, "n_candidates": n, "max_tokens": max_tokens, "temperature": 0.8,
            "top_p": 0.95, "seed": seed}
    r = http.post(url + "/v1/completions", json=body)
    r.raise_for_status()
    return r.json()["choices"][0]["text"]


def run_cell(call, concurrency: int, requests: int) -> dict:
    """`requests` calls spread over `concurrency` client threads: latencies, throughput, failures."""
    lat: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    todo = iter(range(requests))

    def client() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                text = call(PROMPTS[i % len(PROMPTS)], i)
                ok = isinstance(text, str)
            except Exception as e:  # noqa: BLE001 - a failed or lost request is counted, whatever it was
                ok, text = False, f"{type(e).__name__}: {e}"
            with lock:
                (lat if ok else failures).append(time.perf_counter() - start if ok else text)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    return {"requests": requests, "ok": len(lat), "failed": len(failures), "rps": len(lat) / wall,
            "p50_s": q[49], "p95_s": q[94], "p99_s": q[98], "errors": failures[:3]}


def bench_best_of_n(args, rm: Path, upstream: str, server: str) -> list[dict]:
    rows = []
    with ThreadPoolExecutor(max_workers=1024) as pool, httpx.Client(timeout=600) as http:
        direct = Direct(rm, upstream, pool)
        for n in args.n:
            for c in args.concurrency:
                requests = max(c, args.min_requests)
                d = run_cell(lambda p, i, n=n: direct.best_of(p, n, i, args.max_tokens), c, requests)
                s = run_cell(lambda p, i, n=n: via_server(http, server, p, n, i, args.max_tokens), c, requests)
                row = {"n": n, "concurrency": c, "server": s, "direct": d, "overhead_p50": s["p50_s"] / d["p50_s"],
                       "load": os.getloadavg()[0]}
                rows.append(row)
                print(f"  N={n:2d} c={c:2d}: server p50 {s['p50_s']:.3f}s rps {s['rps']:.2f} failed {s['failed']} | "
                      f"direct p50 {d['p50_s']:.3f}s rps {d['rps']:.2f} failed {d['failed']} | "
                      f"ratio {row['overhead_p50']:.2f}  (load {row['load']:.1f})", flush=True)
    return rows


def bench_execute(args, server: str, tmp: Path) -> list[dict]:
    from execution import programs

    from rewardranker.execution import ExecutionConfig, execute, langs

    rows = []
    with httpx.Client(timeout=1800) as http:
        for lang in args.langs:
            problems, samples = programs(lang, args.per_language)
            items = [{"language": lang, "prompt": s.prompt or problems[s.problem_id].prompt,
                      "completion": s.completion, "tests": problems[s.problem_id].tests} for s in samples]
            # one-off machine set-up (PCH, compiler-server builds) outside the timings, as benchmarks/execution.py
            http.post(server + "/v1/execute", json={"programs": [{"language": lang, "program": "x"}]})
            lang_def = langs.get(lang)
            if args.baseline_compile_timeout:  # this process only: the server keeps MultiPL-E's limit
                lang_def.compile_timeout_s = args.baseline_compile_timeout
            start = time.perf_counter()
            base = execute(problems, samples, ExecutionConfig(workers=2, fast=False, use_cache=False), progress=False)
            base_wall = time.perf_counter() - start
            start = time.perf_counter()
            r = http.post(server + "/v1/execute", json={"programs": items})
            wall = time.perf_counter() - start
            r.raise_for_status()
            verdicts = r.json()["verdicts"]
            pairs = [((b.status, b.passed), (v["status"], v["passed"])) for v, b in zip(verdicts, base)]
            rows.append({"lang": lang, "programs": len(items), "baseline_pps": len(items) / base_wall,
                         "server_pps": len(items) / wall, "speedup": base_wall / wall,
                         "agreement": sum(a == b for a, b in pairs), "disagreements": [p for p in pairs if p[0] != p[1]],
                         "baseline_compile_timeout_s": lang_def.compile_timeout_s,
                         "cached": sum(v["cached"] for v in verdicts), "load": os.getloadavg()[0]})
            agree = rows[-1]["agreement"]
            print(f"  execute {lang}: {rows[-1]['speedup']:.1f}x ({agree}/{len(items)} verdicts equal)", flush=True)
    return rows


def print_tables(bon: list[dict], ex: list[dict]) -> None:
    print("\nbest-of-N: server vs the same in the client (latency in seconds)")
    head = (f"{'N':>3} {'conc':>4} | {'server rps':>10} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>4} | "
            f"{'direct rps':>10} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>4} | {'p50 ratio':>9}")
    print(head + "\n" + "-" * len(head))
    for r in bon:
        s, d = r["server"], r["direct"]
        print(f"{r['n']:3d} {r['concurrency']:4d} | {s['rps']:10.2f} {s['p50_s']:6.3f} {s['p95_s']:6.3f} "
              f"{s['p99_s']:6.3f} {s['failed']:4d} | {d['rps']:10.2f} {d['p50_s']:6.3f} {d['p95_s']:6.3f} "
              f"{d['p99_s']:6.3f} {d['failed']:4d} | {r['overhead_p50']:9.2f}")
    print("\n/v1/execute (one batch) vs per-program compilation (MultiPL-E's commands), same programs")
    print(f"{'lang':5} {'progs':>5} | {'baseline/s':>10} {'server/s':>9} | {'speed-up':>8} | verdicts equal")
    for r in ex:
        print(f"{r['lang']:5} {r['programs']:5d} | {r['baseline_pps']:10.2f} {r['server_pps']:9.2f} | "
              f"{r['speedup']:7.1f}x | {r['agreement']}/{r['programs']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="1,4,16", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--concurrency", default="1,8,32", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--min-requests", type=int, default=4, help="requests per cell at least (else = concurrency)")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--workers", type=int, default=8, help="server --workers")
    ap.add_argument("--langs", default="cpp,java,ts", type=lambda s: s.split(","))
    ap.add_argument("--per-language", type=int, default=2, help="MultiPL-E problems per language (x2, +7)")
    ap.add_argument("--skip-execute", action="store_true")
    ap.add_argument("--skip-best-of-n", action="store_true", help="keep the best-of-N rows of an earlier --json")
    ap.add_argument("--baseline-compile-timeout", type=float, default=None,
                    help="compile limit (s) for the baseline only; default MultiPL-E's 15 s, which a loaded "
                         "machine's per-program tsc can exceed (the verdicts then disagree)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "serve.json")
    args = ap.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    load_start = os.getloadavg()
    print(f"{cpu}, {os.cpu_count()} cores shared with other jobs; load average at start {load_start}")
    with tempfile.TemporaryDirectory(prefix="rr-bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        gen, rm = build_models(tmp)
        up_port, srv_port = free_port(), free_port()
        upstream, server = f"http://127.0.0.1:{up_port}/v1", f"http://127.0.0.1:{srv_port}"
        with open(tmp / "upstream.log", "w") as up_log, open(tmp / "server.log", "w") as srv_log:
            up = start_upstream(gen, up_port, up_log)
            srv = None
            try:
                wait_healthy(upstream + "/models", up, "upstream")
                srv = start_server(rm, upstream, srv_port, tmp / "verdicts.sqlite", args.workers, srv_log)
                wait_healthy(server + "/health", srv, "server")
                previous = json.loads(args.json.read_text()) if args.json.exists() else {}
                bon = previous.get("best_of_n", []) if args.skip_best_of_n else bench_best_of_n(args, rm, upstream,
                                                                                                   server)
                ex = previous.get("execute", []) if args.skip_execute else bench_execute(args, server, tmp)
            finally:
                for p in (srv, up):
                    if p is not None:
                        p.terminate()
                        p.wait(timeout=120)
    print_tables(bon, ex)
    result = {"best_of_n": bon, "execute": ex, "cpu": cpu, "cores": os.cpu_count(), "torch_threads": 1,
              "server_workers": args.workers, "max_tokens": args.max_tokens, "load_average_start": load_start,
              "load_average_end": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"load average at end: {os.getloadavg()}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
