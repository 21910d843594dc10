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

h11 checks every response header against its grammar before it writes it (a header value with a
line break in it must never reach the socket), through a general path that also accepts text and
calls a helper per header: about 30 µs a response on the machine of issue 9's round eight, as much
as parsing the request. ``checked_response`` runs the same two expressions of h11 on each header,
hands h11 the headers as checked, and leaves anything they refuse to h11's own path, which refuses it
with its own error. A header it has seen pass before (most are the same on every response) is not
matched again.

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

# h11's own expressions for a header's name and value (RFC 9110 §5.1, §5.5), as its general path uses
# them; h11 is pinned with hypercorn, and tests/test_http1.py fails if they stop refusing a line break.
from h11._headers import _field_name_re as FIELD_NAME
from h11._headers import _field_value_re as FIELD_VALUE
from h11._headers import normalize_and_validate
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import RawData
from hypercorn.protocol.events import Body, EndBody, Response
from hypercorn.protocol.h11 import H11Protocol

# Headers that passed both expressions before. Most of a response's headers are the same on every
# response (content types, cache rules, the security headers with their long policy): a set lookup
# instead of two expressions a header, about 15 µs a response on the machine of issue 9's round ten.
# Only what passed is kept, so a header is never let through that the expressions would refuse; the
# set is emptied when it is full, as headers that change per response (date, request id) fill it.
PASSED_HEADERS: set[tuple[bytes, bytes]] = set()
PASSED_HEADERS_LIMIT = 2048


def header_passes(name: bytes, value: bytes) -> bool:
    header = (name, value)
    if header in PASSED_HEADERS:
        return True
    if FIELD_NAME.fullmatch(name) is None or FIELD_VALUE.fullmatch(value) is None:
        return False
    if len(PASSED_HEADERS) >= PASSED_HEADERS_LIMIT:
        PASSED_HEADERS.clear()
    PASSED_HEADERS.add(header)
    return True


def checked_response(status_code: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    """h11's Response for a final answer, each header checked by h11's expressions on the way."""
    for name, value in headers:
        if not header_passes(name, value):
            return h11.Response(headers=headers, status_code=status_code)  # h11 refuses it, in its words
    # Content-Length and Transfer-Encoding are still h11's to check and to frame the body by.
    return h11.Response(headers=normalize_and_validate(headers, _parsed=True), status_code=int(status_code),
                        _parsed=True)


class OneWriteH11Protocol(H11Protocol):
    _held: bytes = b""  # a response's head, waiting for its body

    async def stream_send(self, event) -> None:
        if self._held and not isinstance(event, (Response, Body, EndBody)):
            await self._write_held()  # e.g. a WebSocket's frames, or the stream closing early
        if type(event) is Response and event.status_code >= 200:
            # As hypercorn's own, the response built by checked_response.
            headers = [*event.headers, *self.config.response_headers("h11")]
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            await self._send_h11_event(checked_response(event.status_code, headers))
            return
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
