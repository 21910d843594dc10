"""``op-proxy serve``: start-up, hypercorn in one or several worker processes, and how it stops.

- Start-up first brings the database to the latest migration. A database that does not answer is
  waited on for ``[server] startup_timeout`` seconds at most, and SIGTERM/SIGINT stop the wait at once.
- ``--workers N`` runs N processes on one listening socket (the kernel hands each new connection to
  one of them), so one machine uses all its cores; /metrics adds up what every worker counted
  (prometheus_client's multiprocess mode, in a directory of this run's own).
- SIGTERM or SIGINT stops accepting connections and gives the requests in flight
  ``[server] graceful_timeout`` seconds to finish; idle keep-alive connections are closed at once.
- A request body that stops arriving for ``[server] read_timeout`` seconds gets a 408 and its
  connection is closed (a slow-loris client cannot hold connections for ever). Incomplete request
  headers are bounded by hypercorn's keep-alive timeout (5 s). Hypercorn's own ``read_timeout`` is not
  used: it would also cut the connection of a response that takes longer than it to prepare.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from multiprocessing.connection import wait

from hypercorn.config import Config

log = logging.getLogger("op_proxy.serving")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def serve(settings, *, config_path: str | None, bind: str | None = None, workers: int = 1) -> int:
    """Serve until SIGTERM/SIGINT; the process's exit code."""
    prepare_before_serving(settings, run_app_startup=workers > 1)
    config = hypercorn_config(settings, bind, workers)
    print(f"op-proxy: serving {settings.issuer} (config {settings.source}) on http://{config.bind[0]}"
          + (f" with {workers} workers" if workers > 1 else ""), flush=True)
    if workers == 1:
        run_worker(settings, config)
        return 0
    return supervise(config_path, config, workers, settings.server.graceful_timeout)


# -- start-up ------------------------------------------------------------------------------------

class StartupDatabaseError(Exception):
    """What went wrong while start-up migrated the database (a wrong password, a refused connection):
    ``op-proxy serve`` says it in one line."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def prepare_before_serving(settings, *, run_app_startup: bool) -> None:
    """Migrate the database and, before several workers start, run the app's start-up (config clients,
    signing key) once, so that the workers find everything in place and do not race to create it.

    It runs in a daemon thread and the main thread only waits, at most ``startup_timeout`` seconds
    and only until SIGTERM/SIGINT: a database that never answers cannot keep the process alive. On
    either the process ends at once (a thread stuck on a silent socket cannot be joined)."""
    outcome: dict = {}

    def work():
        try:
            from op_proxy.storage.database import upgrade_schema

            upgrade_schema(settings.database_url)  # the first contact: where a silent database hangs
            if run_app_startup:
                asyncio.run(app_startup(settings))
            outcome["done"] = True
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as is
            outcome["error"] = exc

    stops: list[int] = []
    previous = {signum: signal.signal(signum, lambda received, _frame: stops.append(received))
                for signum in STOP_SIGNALS}
    try:
        worker = threading.Thread(target=work, name="op-proxy start-up", daemon=True)
        worker.start()
        deadline = time.monotonic() + settings.server.startup_timeout
        while worker.is_alive() and not stops and time.monotonic() < deadline:
            worker.join(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stops:
        print(f"op-proxy: stopped ({signal.Signals(stops[0]).name}) during start-up; nothing was served",
              file=sys.stderr, flush=True)
        os._exit(0)
    if "error" in outcome:
        raise StartupDatabaseError(outcome["error"])
    if "done" not in outcome:
        backend = settings.database_url.split(":", 1)[0]
        print(f"op-proxy: the database ({backend}) did not answer within {settings.server.startup_timeout} s "
              "(server.startup_timeout); is it running and reachable?", file=sys.stderr, flush=True)
        os._exit(1)


async def app_startup(settings) -> None:
    from op_proxy.app import create_app

    app = create_app(settings)
    await app.startup()
    await app.shutdown()


# -- hypercorn -----------------------------------------------------------------------------------

def hypercorn_config(settings, bind: str | None, workers: int):
    config = ServingConfig()
    config.bind = [bind or f"{settings.server.host}:{settings.server.port}"]
    config.accesslog = None  # our own log lines never carry query strings (codes, tokens)
    config.workers = workers
    config.graceful_timeout = settings.server.graceful_timeout
    config.startup_timeout = settings.server.startup_timeout
    config.shutdown_timeout = settings.server.graceful_timeout + 10
    return config


class ServingConfig(Config):
    """hypercorn's configuration, whose headers on every response (Date, Server) are made once a second
    instead of for each response: hypercorn formats the date anew each time, about a tenth of what
    sending a page costs it. An HTTP date has one-second resolution, so every response is the same."""

    _made: tuple[float, str, list] = (0.0, "", [])

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        second = int(time.time())
        made_at, made_for, headers = self._made
        if made_at != second or made_for != protocol:
            headers = super().response_headers(protocol)
            self._made = (second, protocol, headers)
        return list(headers)  # a copy: hypercorn's protocols may add to the list they are given


class RequestBodyDeadline:
    """ASGI wrapper: a request body that pauses longer than ``timeout`` seconds gets a 408 and its
    connection is closed. The wait for a response is never limited, only the wait for the client."""

    BODY = b'{"error":"invalid_request","error_description":"the request body stopped arriving"}'

    def __init__(self, app, timeout: float):
        self.app, self.timeout = app, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        complete = timed_out = started = False

        async def receive_in_time():
            nonlocal complete, timed_out, started
            if timed_out:
                return {"type": "http.disconnect"}
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                log.info("request body stopped arriving for %s s: 408, connection closed", self.timeout)
                if not started:
                    started = True
                    await send({"type": "http.response.start", "status": 408, "headers": [
                        (b"content-type", b"application/json"), (b"connection", b"close"),
                        (b"content-length", str(len(self.BODY)).encode())]})
                    await send({"type": "http.response.body", "body": self.BODY})
                return {"type": "http.disconnect"}  # the application stops working on it
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def send_unless_answered(message):
            nonlocal started
            if timed_out:
                return  # the 408 was the answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, receive_in_time, send_unless_answered)


def run_worker(settings, config, sockets=None, shutdown_event=None) -> None:
    """Serve in this process until SIGTERM/SIGINT (or the supervisor's ``shutdown_event``), then drain."""
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import wrap_app

    from op_proxy import http1
    from op_proxy.app import create_app
    from op_proxy.logs import configure as configure_logs

    http1.install()  # each HTTP/1.1 response in one write (see op_proxy.http1)
    app = create_app(settings)
    configure_logs(settings.logging, config)  # [logging] in this worker, hypercorn's own lines included
    stop: asyncio.Event | None = None
    parent = os.getppid()

    @app.before_serving
    async def drain_on_stop_signals():
        # Registered after the app's own start-up: until it has finished, a signal ends the process
        # at once (nothing is being served yet); from here on it starts the drain.
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stopping, signum)

    def stopping(signum):
        log.info("%s: no new connections; requests in flight get up to %s s to finish",
                 signal.Signals(signum).name, config.graceful_timeout)
        stop.set()

    async def stop_requested():
        while not stop.is_set():
            if shutdown_event is not None and (shutdown_event.is_set() or os.getppid() != parent):
                return
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except TimeoutError:
                pass

    runner = event_loop_runner()
    if sockets is not None:  # one of several workers on a shared socket
        sockets, config = take_turns_accepting(sockets, config, uvloop=runner is not None)

    async def main():
        nonlocal stop
        stop = asyncio.Event()
        wrapped = wrap_app(RequestBodyDeadline(app, settings.server.read_timeout), config.wsgi_max_body_size, "asgi")
        await worker_serve(wrapped, config, sockets=sockets, shutdown_trigger=stop_requested)

    with runner or asyncio.Runner() as running:
        running.run(main())


def event_loop_runner() -> asyncio.Runner | None:
    """uvloop's event loop where it is installed (a dependency everywhere but Windows): the same asyncio
    API with its scheduling, sockets and timers in C, as hypercorn's own ``uvloop`` worker class uses.
    Measured on the API rows of make bench: about a tenth less CPU per request. None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


# -- several workers -----------------------------------------------------------------------------

class _OneAtATimeListener(socket.socket):
    """A shared listening socket whose kernel backlog stays ``queue`` whatever asyncio asks for."""

    queue = 100

    def listen(self, _backlog=None):
        super().listen(self.queue)


def take_turns_accepting(sockets, config, *, uvloop: bool):
    """The workers share one listening socket, and asyncio accepts up to ``backlog`` connections per
    wake-up: the first worker to wake took a whole burst (a load balancer opening its keep-alive
    pool, wrk's 32 connections) and served it alone while the others idled. Accepting one
    connection per wake-up lets every worker take its turn; the kernel's queue keeps its length.
    A stopped or stuck worker accepts nothing, and the others take every new connection.

    Under uvloop none of this is needed, nor possible: libuv listens with the backlog itself (a
    backlog of 1 would become the kernel's queue, and a burst would be refused), and its accept loop
    takes one connection per wake-up (strace: one accept4 per epoll_wait on a queued burst), so the
    workers share the socket as it is (test_serve_workers_and_restarts checks a burst is shared)."""
    from dataclasses import replace

    if uvloop:
        return sockets, config

    def one_at_a_time(sock):
        listener = _OneAtATimeListener(sock.family, sock.type, sock.proto, fileno=sock.detach())
        listener.queue = config.backlog
        return listener

    turns = replace(sockets, insecure_sockets=[one_at_a_time(s) for s in sockets.insecure_sockets],
                    secure_sockets=[one_at_a_time(s) for s in sockets.secure_sockets])
    config.backlog = 1  # asyncio's accept batch; the kernel's queue is the listener's
    return turns, config


def _worker_process(config_path, config, sockets, shutdown_event) -> None:
    """A worker's life (a process of its own, started with spawn)."""
    from op_proxy.cli import configure_logging
    from op_proxy.config import load_settings

    configure_logging()
    run_worker(load_settings(config_path), config, sockets, shutdown_event)


def supervise(config_path: str | None, config, workers: int, graceful_timeout: int) -> int:
    """Start ``workers`` processes on one listening socket; on SIGTERM/SIGINT let them drain.
    A worker that ends by itself ends the service (the service manager restarts it whole)."""
    metrics_dir = tempfile.mkdtemp(prefix="op-proxy-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by prometheus_client when a worker imports it
    sockets = config.create_sockets()
    context = multiprocessing.get_context("spawn")
    shutdown_event = context.Event()
    stops: list[int] = []

    def on_signal(signum, _frame):
        stops.append(signum)
        shutdown_event.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    processes = []
    exit_code = 0
    try:
        for number in range(workers):
            process = context.Process(target=_worker_process, name=f"op-proxy worker {number + 1}",
                                      args=(config_path, config, sockets, shutdown_event))
            process.start()
            processes.append(process)
        log.info("workers %s", " ".join(str(p.pid) for p in processes))
        while not stops:
            ended = [p for p in processes if p.exitcode is not None]
            if ended:
                log.error("worker %s ended with exit code %s: stopping the others", ended[0].pid, ended[0].exitcode)
                exit_code = 1
                shutdown_event.set()
                break
            wait([p.sentinel for p in processes], timeout=0.5)
        if stops:
            log.info("%s: workers finish the requests in flight (up to %s s)",
                     signal.Signals(stops[0]).name, graceful_timeout)
        deadline = time.monotonic() + graceful_timeout + 15
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.exitcode is None:
                log.error("worker %s did not stop in time: killed", process.pid)
                process.kill()
                process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for sock in (*sockets.insecure_sockets, *sockets.secure_sockets):
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return exit_code
