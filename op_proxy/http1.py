"""hypercorn's HTTP/1.1 connections, lighter on each request: the response written to the socket once,
head and body together, and the keep-alive wait without a task of its own.

hypercorn writes an HTTP/1.1 response as h11 hands it events: the status line and headers when the
application starts its response, the body when it sends it, and the (empty, with a Content-Length)
end of the message after that, each write behind the connection's send lock and a ``drain``. So
every small response left in two TCP segments, and the client was woken twice to read it. Issue
9's profile of ``serve --workers 2``: the socket writes took 8% of a token response's CPU (2.4% with
one worker, when the load generator's core was not also a worker's), and each response costs its
reader two wake-ups.

``OneWriteH11Protocol`` holds the head back until the first bytes of the body, or the end of the
message, and writes them together; an empty write is not made at all. (The ASGI specification asks
this of a server anyway: it "must not start sending the response to the client until it has received
at least one Response Body event"; uvicorn does the same.) Everything else is
hypercorn's own: a streamed body still leaves chunk by chunk (only the head waits, for the first
one), an informational response (``100 Continue``) is written at once, and anything that bypasses
h11 (a WebSocket's frames after its handshake) or ends the stream writes what was held first.

Between two requests hypercorn waits for the connection's keep-alive timeout, or for the server to
stop, in a task of its own, started after every response and cancelled at the next request; its
wait was ``asyncio.wait_for``, which on Python 3.11 starts a second task around the wait.
``LighterTCPServer`` waits with ``asyncio.timeout`` instead, in the one task: the same two ways to
end (the timeout closes the connection; so does the server stopping), one task fewer per request.
With both, hypercorn's own cost per request fell by a tenth (a bare ASGI application answering a
1.4 KB JSON body: 107 µs of CPU per request, then 97).

Each is hypercorn's class with the methods above changed, put where hypercorn creates it from
(``hypercorn.protocol.H11Protocol``, ``hypercorn.asyncio.run.TCPServer``) by ``install()``;
hypercorn is pinned in pyproject.toml, and tests/test_http1.py fails if it stops creating them from
there.
"""

from __future__ import annotations

import asyncio

import h11
import hypercorn.asyncio.run
import hypercorn.protocol
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import RawData
from hypercorn.protocol.events import Body, EndBody, Response
from hypercorn.protocol.h11 import H11Protocol


class OneWriteH11Protocol(H11Protocol):
    _held: bytes = b""  # a response's head, waiting for its body

    async def stream_send(self, event) -> None:
        if self._held and not isinstance(event, (Response, Body, EndBody)):
            await self._write_held()  # e.g. a WebSocket's frames, or the stream closing early
        await super().stream_send(event)

    async def _send_h11_event(self, event) -> None:
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return  # as hypercorn: the client broke the protocol; nothing more is written
        if type(event) is h11.Response:  # not an InformationalResponse: a 100 Continue goes at once
            self._held += data
            return
        if self._held:
            data, self._held = self._held + data, b""
        if data:
            await self.send(RawData(data=data))

    async def _write_held(self) -> None:
        data, self._held = self._held, b""
        await self.send(RawData(data=data))


class LighterTCPServer(TCPServer):
    async def _idle_timeout(self) -> None:
        try:
            async with asyncio.timeout(self.config.keep_alive_timeout):
                await self.context.terminated.wait()
        except TimeoutError:
            pass
        await asyncio.shield(self._initiate_server_close())


def install() -> None:
    """Every connection hypercorn (asyncio) accepts from now on, in this process, is a LighterTCPServer,
    speaking HTTP/1.1 with OneWriteH11Protocol."""
    hypercorn.asyncio.run.TCPServer = LighterTCPServer
    hypercorn.protocol.H11Protocol = OneWriteH11Protocol
