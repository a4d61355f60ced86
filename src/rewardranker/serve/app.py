"""The FastAPI app: OpenAI-compatible best-of-N, /v1/score, /v1/execute, the OpenRLHF remote-RM route, ops.

Every error a client can cause comes back as OpenAI's error shape, `{"error": {"message", "type", "param",
"code"}}`, with a 4xx status naming the field; nothing a client sends reaches the host (programs run only in the
executor's sandbox). Work runs on a pool of `workers` threads; beyond that, `max_queue` requests wait and the
next get 429. A request past `request_timeout_s` gets 504 (its worker finishes the job and is then reused).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardranker.errors import RewardRankerError
from rewardranker.records import Problem
from rewardranker.serve import schemas
from rewardranker.serve.engine import (
    Engine,
    Job,
    Outcome,
    RequestError,
    ServeConfig,
    UpstreamError,
    random_seed,
    split_model_prefix,
    verdict_dict,
)
from rewardranker.serve.metrics import Metrics, log_access, setup_access_log

LOG = logging.getLogger("rewardranker.serve")
MAX_BODY = 16 * 2**20  # bytes
OPEN_PATHS = ("/health",)  # answered without the API key


class APIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code


def error_response(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                   code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status, headers=headers)


class Admission:
    """Counts admitted requests (running + queued); refuses beyond workers + max_queue."""

    def __init__(self, limit: int):
        self.limit, self.count, self.lock = limit, 0, threading.Lock()

    def enter(self) -> bool:
        with self.lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def leave(self, *_: Any) -> None:
        with self.lock:
            self.count -= 1


def create_app(engine: Engine) -> FastAPI:
    """The app over an already loaded engine (models load once, before the first request)."""
    cfg = engine.cfg
    metrics = Metrics()
    pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="rr-serve")
    admission = Admission(cfg.workers + cfg.max_queue)
    setup_access_log()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown(wait=True)  # uvicorn has already let in-flight requests finish
        engine.close()

    app = FastAPI(title="rewardranker", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(AccessMiddleware, api_key=cfg.api_key, metrics=metrics)
    app.state.engine, app.state.metrics, app.state.admission = engine, metrics, admission

    async def run(fn, *args):
        """Run `fn(*args)` on the worker pool under admission control and the per-request timeout."""
        if not admission.enter():
            metrics.rejected.inc()
            raise APIError(429, f"server busy: {admission.limit} requests are already running or queued; retry "
                                "later", kind="rate_limit_error", code="queue_full")
        metrics.in_flight.inc()
        fut = asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        fut.add_done_callback(admission.leave)
        fut.add_done_callback(lambda _: metrics.in_flight.dec())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), cfg.request_timeout_s)
        except TimeoutError:
            metrics.timeouts.inc()
            raise APIError(504, f"request timed out after {cfg.request_timeout_s} s", kind="timeout_error",
                           code="timeout") from None
        except RequestError as e:
            raise APIError(400, str(e), e.param) from None
        except UpstreamError as e:
            raise APIError(502, str(e), kind="upstream_error") from None
        except RewardRankerError as e:
            raise APIError(500, str(e), kind="server_error") from None

    # ------------------------------------------------------------------ middleware and errors

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, e: APIError):
        headers = {"retry-after": "1"} if e.status == 429 else None
        return error_response(e.status, e.message, e.param, e.kind, e.code, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        msg = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) else str(e.detail)
        return error_response(e.status_code, msg, kind="invalid_request_error",
                              code="not_found" if e.status_code == 404 else None)

    # ------------------------------------------------------------------ routes

    @app.get("/health")
    async def health():
        return {"status": "ok", "reward_model": str(cfg.model), "generator": engine.generator.name,
                "in_flight": admission.count, "capacity": admission.limit}

    @app.get("/metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        name = cfg.upstream_model or "local"
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "rewardranker"},
                                           {"id": f"best-of-{cfg.n_candidates}/{name}", "object": "model",
                                            "owned_by": "rewardranker"}]}

    async def best_of_n(request: Request, body: schemas.BestOfN, job: Job):
        request.state.log = {"n_candidates": job.n_candidates, "rerank": job.rerank}
        outcome = await run(engine.best_of_n, job)
        request.state.log.update(outcome.timings_ms)
        metrics.candidates.inc(job.n_candidates)
        metrics.count_verdicts(outcome.executions)
        return respond(completion_body(body, job, outcome, chat=job.chat), body, chat=job.chat)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await parse(request, schemas.ChatCompletionRequest)
        job = make_job(body, engine.generator.render_chat([(m.role, m.text) for m in body.messages]), True, cfg)
        job.messages = [{"role": m.role, "content": m.text} for m in body.messages]
        return await best_of_n(request, body, job)

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await parse(request, schemas.CompletionRequest)
        return await best_of_n(request, body, make_job(body, body.prompt, False, cfg))

    @app.post("/v1/score")
    async def score(request: Request):
        body = await parse(request, schemas.ScoreRequest)
        request.state.log = {"n_candidates": len(body.candidates), "rerank": body.rerank}
        scores = await run(engine.scores, body.prompt, body.candidates, body.language, body.rerank,
                           body.generated_tests)
        ranking = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return {"object": "rewardranker.scores", "model": str(cfg.model), "rerank": body.rerank, "scores": scores,
                "ranking": ranking}

    @app.post("/v1/execute")
    async def execute(request: Request):
        body = await parse(request, schemas.ExecuteRequest)
        request.state.log = {"programs": len(body.programs)}
        progs = [(Problem("p", it.language, *_prompt_tests(it)), it.text()[1]) for it in body.programs]
        verdicts = await run(engine.execute, progs, body.timeout_s, body.verdict_rule)
        metrics.count_verdicts(verdicts)
        out = [{"index": i, "language": v.language, **verdict_dict(v)} for i, v in enumerate(verdicts)]
        return {"object": "rewardranker.verdicts", "verdicts": out,
                "summary": {"programs": len(out), "passed": sum(v["passed"] for v in out),
                            "cached": sum(v["cached"] for v in out)}}

    @app.post("/openrlhf/reward")
    async def openrlhf_reward(request: Request):
        """OpenRLHF's remote reward model URL (`--remote_rm_url .../openrlhf/reward`)."""
        from rewardranker.serve.adapters import EngineJudge, openrlhf_rewards

        body = await parse(request, schemas.OpenRLHFRequest)
        request.state.log = {"programs": len(body.query)}
        return await run(openrlhf_rewards, EngineJudge(engine), body.query, body.prompts, body.labels)

    return app


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}  # pydantic's union-member labels in `loc`
KNOWN_ROUTES = {"/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/score",
                "/v1/execute", "/openrlhf/reward"}


class AccessMiddleware:
    """Plain ASGI middleware (no extra task per request): API key, body-size cap, request id, metrics, and one
    JSON access-log line per request; an exception that escapes a route becomes a logged 500."""

    def __init__(self, app, api_key: str | None, metrics: Metrics):
        self.app, self.api_key, self.metrics = app, api_key, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-request-id", "")[:64] or uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        status = {"code": 500, "started": False}

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        path = scope["path"]
        refusal = _check_auth(path, headers, self.api_key) or _check_size(headers)
        try:
            await (refusal or self.app)(scope, receive, send_with_id)
        except Exception:  # the last line of defence: log it, answer 500, keep serving
            LOG.exception("unhandled error on %s", path)
            if not status["started"]:
                await error_response(500, "internal server error (logged on the server)",
                                     kind="server_error")(scope, receive, send_with_id)
        elapsed = time.perf_counter() - start
        route = path if path in KNOWN_ROUTES else "other"
        self.metrics.requests.labels(route, str(status["code"])).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        client = scope.get("client")
        log_access(rid=rid, method=scope["method"], path=path, status=status["code"], ms=round(elapsed * 1000, 1),
                   client=client[0] if client else None, **state.get("log", {}))


def _check_auth(path: str, headers: dict[str, str], api_key: str | None) -> JSONResponse | None:
    if not api_key or path in OPEN_PATHS:
        return None
    given = headers.get("authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
        return None
    return error_response(401, "missing or wrong API key (send 'Authorization: Bearer KEY')", code="invalid_api_key")


def _check_size(headers: dict[str, str]) -> JSONResponse | None:
    length = headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return error_response(413, f"request body over {MAX_BODY} bytes", code="body_too_large")
    return None


async def parse(request: Request, model: type[BaseModel]) -> Any:
    """Read the JSON body (at most MAX_BODY bytes) and validate it; errors name the field."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise APIError(413, f"request body over {MAX_BODY} bytes", code="body_too_large")
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise APIError(400, f"body is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(obj, dict):
        raise APIError(400, f"body must be a JSON object, got {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        first = e.errors()[0]
        param = ".".join(str(x) for x in first["loc"] if isinstance(x, int) or x.isidentifier() and x not in
                         _TYPE_TAGS) or None
        what = f"field '{param}'" if param else "body"
        msg = first["msg"].removeprefix("Value error, ")
        more = f" (and {e.error_count() - 1} more errors)" if e.error_count() > 1 else ""
        raise APIError(400, f"{what}: {msg}{more}", param) from None


def make_job(body: schemas.BestOfN, prompt: str, chat: bool, cfg: ServeConfig) -> Job:
    """Resolve N, mode and sampling settings from the body, the model prefix and the server's defaults."""
    prefixed, name = split_model_prefix(body.model)
    if prefixed is not None and body.n_candidates is not None and prefixed != body.n_candidates:
        raise APIError(400, f"field 'n_candidates' = {body.n_candidates} contradicts the model prefix "
                            f"best-of-{prefixed}", "n_candidates")
    n_cand = body.n_candidates or prefixed or cfg.n_candidates
    param = "n_candidates" if body.n_candidates else "model"
    if not 1 <= n_cand <= cfg.max_candidates:
        raise APIError(400, f"field '{param}': {n_cand} candidates asked; this server samples 1 to "
                            f"{cfg.max_candidates}", param)
    if body.n > n_cand:
        raise APIError(400, f"field 'n' = {body.n} exceeds the {n_cand} candidates sampled", "n")
    new_tokens = body.new_tokens or cfg.max_tokens
    if new_tokens > cfg.max_tokens_limit:
        raise APIError(400, f"field 'max_tokens' = {new_tokens} exceeds this server's limit "
                            f"{cfg.max_tokens_limit}", "max_tokens")
    upstream_model = name if name and name not in ("local", "") else cfg.upstream_model
    return Job(prompt=prompt, n_candidates=n_cand, n_return=body.n, rerank=body.rerank, language=body.language,
               temperature=cfg.temperature if body.temperature is None else body.temperature,
               top_p=cfg.top_p if body.top_p is None else body.top_p, max_tokens=new_tokens, stop=list(body.stop or []),
               seed=random_seed() if body.seed is None else body.seed, chat=chat, upstream_model=upstream_model,
               tests=body.tests, generated_tests=body.generated_tests)


def _prompt_tests(item: schemas.ProgramItem) -> tuple[str, str]:
    prompt, _, tests = item.text()
    return prompt, tests


def completion_body(body: schemas.BestOfN, job: Job, outcome: Outcome, chat: bool) -> dict[str, Any]:
    """The OpenAI response: the n best candidates as choices, each with its rank, score and verdict."""
    choices = []
    for k, c in enumerate(outcome.ranked[:job.n_return]):
        choice: dict[str, Any] = {"index": k, "finish_reason": c.finish_reason, "logprobs": None,
                                  "rewardranker": {"rank": c.rank, "score": c.score, "candidate_index": c.index,
                                                   "verdict": c.verdict}}
        if chat:
            choice["message"] = {"role": "assistant", "content": c.text}
        else:
            choice["text"] = c.text
        choices.append(choice)
    usage = {"prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
             "total_tokens": outcome.prompt_tokens + outcome.completion_tokens}
    summary = [{"candidate_index": c.index, "rank": c.rank, "score": c.score,
                "passed": None if c.verdict is None else c.verdict["passed"]}
               for c in sorted(outcome.ranked, key=lambda c: c.index)]
    return {"id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex, "object": "chat.completion" if chat
            else "text_completion", "created": int(time.time()), "model": body.model, "choices": choices,
            "usage": usage, "rewardranker": {"n_candidates": job.n_candidates, "rerank": job.rerank,
                                             "executed": job.tests is not None, "candidates": summary}}


def respond(full: dict[str, Any], body: schemas.BestOfN, chat: bool):
    """The whole response, or (stream=true) the chosen answers as server-sent events once all N are ranked."""
    if not body.stream:
        return full
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(_events(full, chat, include_usage), media_type="text/event-stream")


def _events(full: dict[str, Any], chat: bool, include_usage: bool):
    obj = "chat.completion.chunk" if chat else "text_completion"
    head = {"id": full["id"], "object": obj, "created": full["created"], "model": full["model"]}
    for choice in full["choices"]:
        extra = {"rewardranker": choice["rewardranker"]}
        if chat:
            first = {"index": choice["index"], "delta": {"role": "assistant", "content": choice["message"]["content"]},
                     "finish_reason": None, **extra}
            last = {"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"]}
        else:
            first = {"index": choice["index"], "text": choice["text"], "finish_reason": None, **extra}
            last = {"index": choice["index"], "text": "", "finish_reason": choice["finish_reason"]}
        for part in (first, last):
            yield f"data: {json.dumps({**head, 'choices': [part]})}\n\n"
    if include_usage:
        yield f"data: {json.dumps({**head, 'choices': [], 'usage': full['usage']})}\n\n"
    yield "data: [DONE]\n\n"
