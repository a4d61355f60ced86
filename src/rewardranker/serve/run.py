"""Start the service: load the models once, then serve with uvicorn until SIGINT/SIGTERM.

On a signal uvicorn stops accepting connections and lets in-flight requests finish (up to
`graceful_timeout_s`) before the worker pool and the models are released.
"""

from __future__ import annotations

import logging
import signal

from rewardranker.serve.engine import Engine, ServeConfig

LOG = logging.getLogger("rewardranker.serve")


def build_server(cfg: ServeConfig):
    """A ready uvicorn.Server over a freshly loaded engine (call `.run()`, or run it in a thread for tests)."""
    import uvicorn

    from rewardranker.serve.app import create_app

    engine = Engine(cfg)
    app = create_app(engine)
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=int(cfg.graceful_timeout_s), lifespan="on")
    return uvicorn.Server(config)


def serve(cfg: ServeConfig) -> None:
    """Block serving `cfg` (the CLI's `rewardranker serve`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is noise (and costs time)
    server = build_server(cfg)
    LOG.info("serving on http://%s:%d (generator %s, reward model %s, %d workers, queue %d)", cfg.host, cfg.port,
             server.config.app.state.engine.generator.name, cfg.model, cfg.workers, cfg.max_queue)
    # uvicorn re-raises the signal that stopped it once shutdown is done; after a graceful shutdown that is
    # a normal exit (status 0), so the handlers it restores are no-ops
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    LOG.info("shut down: in-flight requests finished")
