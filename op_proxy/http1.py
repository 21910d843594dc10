"""HTTP/1.1 responses written to the socket once: head and body together.

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

It is hypercorn's ``H11Protocol`` with one method changed, put in the place hypercorn creates it
from (``hypercorn.protocol.H11Protocol``) by ``install()``; hypercorn is pinned in pyproject.toml,
and tests/test_http1.py fails if hypercorn stops creating it from there.
"""

from __future__ import annotations

import h11
import hypercorn.protocol
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
        if type(event) is h11.Response:  # noqa: E721 - not InformationalResponse: a 100 goes at once
            self._held += data
            return
        if self._held:
            data, self._held = self._held + data, b""
        if data:
            await self.send(RawData(data=data))

    async def _write_held(self) -> None:
        data, self._held = self._held, b""
        await self.send(RawData(data=data))


def install() -> None:
    """Every HTTP/1.1 connection hypercorn accepts from now on, in this process, uses OneWriteH11Protocol."""
    hypercorn.protocol.H11Protocol = OneWriteH11Protocol
