"""Prometheus metrics (prometheus_client) and one JSON access-log line per request."""

from __future__ import annotations

import json
import logging
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ACCESS = logging.getLogger("rewardranker.serve.access")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The service's metrics in their own registry (several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rewardranker_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency = Histogram("rewardranker_request_seconds", "Request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.candidates = Counter("rewardranker_candidates_sampled", "Candidates sampled for best-of-N", registry=r)
        self.executions = Counter("rewardranker_executions", "Programs executed (verdicts returned)",
                                  ["language", "status"], registry=r)
        self.cache_hits = Counter("rewardranker_execution_cache_hits", "Verdicts served from the verdict cache",
                                  registry=r)
        self.rejected = Counter("rewardranker_rejected", "Requests refused with 429 (queue full)", registry=r)
        self.timeouts = Counter("rewardranker_timeouts", "Requests that hit the per-request timeout", registry=r)
        self.in_flight = Gauge("rewardranker_in_flight", "Requests admitted (running or queued)", registry=r)

    def count_verdicts(self, verdicts) -> None:
        for v in verdicts:
            self.executions.labels(v.language, str(getattr(v.status, "value", v.status))).inc()
            if v.cached:
                self.cache_hits.inc()


def setup_access_log(level: int = logging.INFO) -> None:
    """Send access lines (JSON, one per request) to stderr, once."""
    if not ACCESS.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ACCESS.addHandler(handler)
        ACCESS.setLevel(level)
        ACCESS.propagate = False


def log_access(**fields) -> None:
    ACCESS.info(json.dumps({"ts": round(time.time(), 3), **fields}, separators=(",", ":")))
