"""`zonehost zoneapi --listen HOST:PORT [--workers N]`: the zone API alone.

With several workers, this process is a small supervisor: it makes the rate
limiters' shared memory, forks the workers (before any event loop or
database connection exists), each of which opens its own database and
serves the same address (SO_REUSEPORT; the kernel spreads connections over
them), passes SIGTERM and SIGINT on, and waits. A worker that dies stops
the service (the others are told to stop, the exit status is 1): restarting
is the supervisor's job (systemd's Restart=), not a silent one here.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from prometheus_client import start_http_server

from zonehost.config import Settings, parse_hostport, zoneapi_config
from zonehost.errors import CommandError
from zonehost.runtime import open_database

if TYPE_CHECKING:
    from zoneapi.config import ZoneApiConfig
    from zoneapi.ratelimit import Limiter

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1


def register(sub: Any) -> None:
    p = sub.add_parser("zoneapi", help="run the zone API alone")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="HTTP address (default: setting zoneapi_listen, 127.0.0.1:8053)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes serving the address together (SO_REUSEPORT), sharing the "
                        "rate limits (default: setting zoneapi_workers, 1)")
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="also serve Prometheus metrics here (with several workers: their sum, "
                        "through prometheus_client's multiprocess mode)")
    p.set_defaults(func=cmd_zoneapi)


def cmd_zoneapi(args: argparse.Namespace, settings: Settings) -> int:
    config = zoneapi_config(settings)
    if args.listen:
        config = replace(config, listen=parse_hostport(args.listen, 8053))
    if args.workers is not None:
        if args.workers < 1:
            raise CommandError("--workers must be at least 1")
        config = replace(config, workers=args.workers)
    metrics = parse_hostport(args.metrics, 9153) if args.metrics else None
    if config.workers > 1:
        return _supervise(settings, config, metrics)
    asyncio.run(_run(settings, config, metrics))
    return 0


async def _run(settings: Settings, config: ZoneApiConfig, metrics: tuple[str, int] | None, *,
               limiters: tuple[Limiter, Limiter] | None = None, worker: int | None = None
               ) -> None:
    from zonehost.api_service import start_api

    db = await open_database(settings)
    try:
        if metrics is not None:
            start_http_server(metrics[1], addr=metrics[0])
        runner = await start_api(settings, config, db, limiters=limiters,
                                 reuse_port=worker is not None)
        host, port = config.listen
        which = "" if worker is None else f" (worker {worker}, pid {os.getpid()})"
        # One write: the workers' lines must not interleave.
        sys.stdout.write(f"zone API on http://{host}:{port}/api/v1/{which}\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        # A worker starts with them blocked (see _supervise): a stop asked
        # for meanwhile is delivered now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await db.close()


def _supervise(settings: Settings, config: ZoneApiConfig,
               metrics: tuple[str, int] | None) -> int:
    from zoneapi.ratelimit import SharedRateLimiter

    limiters: tuple[Limiter, Limiter] = (SharedRateLimiter(config.rate_per_address),
                                         SharedRateLimiter(config.rate_per_token))
    metrics_dir = _multiprocess_metrics() if metrics is not None else None
    parent = os.getpid()
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    # Blocked until the workers exist and the handlers are in place, in the
    # parent and (inherited) in each worker until its loop handles them.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        for worker in range(config.workers):
            pid = os.fork()
            if pid == 0:
                _worker(settings, config, limiters, worker, parent)
            children[pid] = worker
        for sig in _STOP_SIGNALS:
            signal.signal(sig, stop_all)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    failed = False
    try:
        if metrics is not None and metrics_dir is not None:
            _serve_multiprocess_metrics(metrics, metrics_dir)
        log.info("zone API: %d workers on %s:%d", config.workers, *config.listen)
        while children:
            pid, status = os.wait()
            worker = children.pop(pid, -1)
            if worker < 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            if code != 0 or not stopping:
                failed = True
                log.error("zone API worker %d (pid %d) exited with status %d%s", worker, pid,
                          code, "" if stopping else "; stopping the others")
            if not stopping:
                stop_all()
    except BaseException:
        stop_all()
        for pid in children:
            os.waitpid(pid, 0)
        raise
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if failed else 0


def _worker(settings: Settings, config: ZoneApiConfig, limiters: tuple[Limiter, Limiter],
            worker: int, parent: int) -> None:
    """A forked worker: serve until told to stop, then leave (never returns)."""
    code = 1
    try:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)  # still blocked: the loop takes them over
        _die_with(parent)
        asyncio.run(_run(settings, config, None, limiters=limiters, worker=worker))
        code = 0
    except CommandError as exc:
        print(f"zonehost: error: {exc}", file=sys.stderr, flush=True)
    except BaseException:
        log.exception("zone API worker %d failed", worker)
    finally:
        logging.shutdown()
        os._exit(code)


def _die_with(parent: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request
        os.kill(os.getpid(), signal.SIGTERM)


def _multiprocess_metrics() -> str:
    """Put prometheus_client into multiprocess mode for the metrics the
    workers will create (each writes its values to files in a fresh
    directory; this process sums them when scraped)."""
    from prometheus_client import values

    if "zoneapi.metrics" in sys.modules:
        raise RuntimeError("the zone API's metrics exist already: multiprocess mode comes first")
    path = tempfile.mkdtemp(prefix="zonehost-zoneapi-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def _serve_multiprocess_metrics(address: tuple[str, int], path: str) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    start_http_server(address[1], addr=address[0], registry=registry)
