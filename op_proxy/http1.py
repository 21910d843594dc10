"""hypercorn's HTTP/1.1 connections, lighter on each request: requests parsed by httptools (llhttp,
Node's parser, in C) instead of h11, each response written to the socket once, head and body
together, and the keep-alive wait without a task of its own.

hypercorn speaks HTTP/1.1 through h11, a parser and state machine in pure Python: on a token call of
issue 9's round eleven, h11 and hypercorn's handling around it were a fifth of the server's CPU, and
the same application under uvicorn (httptools) answered 15–25% more token calls a second. A bare ASGI
application answering a POST: 105 µs of CPU per request under hypercorn with h11, 20 under uvicorn
with httptools, 75 under uvicorn with h11.

``HttptoolsProtocol`` takes the place of hypercorn's ``H11Protocol`` (the same constructor and the
same three methods its TCP server calls) and keeps the rest of hypercorn as it is: its TCP server
(reads, writes, the keep-alive timer, TLS), its ``HTTPStream`` (the ASGI scope, the application's task,
its messages), its worker context (graceful stop, ``max_requests``). What it does itself, each as h11
did for hypercorn:

- **Framing.** A request's body is what its Content-Length or chunked encoding says (llhttp refuses
  both at once, two lengths, a bare LF, a control character in a header: 400 and the connection
  closed). A response keeps its Content-Length and may not send more or less than it (the response
  fails, and the connection is closed); without one it is chunked, or, to an HTTP/1.0 client, ends
  when the connection closes. HEAD, 204 and 304 answers carry no body.
- **Keep-alive.** HTTP/1.1 connections stay open unless either side says ``Connection: close``; an
  HTTP/1.0 request is answered and its connection closed (h11 never kept those open). Pipelined
  requests are answered one after another, in order; reading stops while a request waits its turn.
  A response that ends before its request's body has arrived whole closes the connection. A client
  that closes its side still gets the answer to a request it sent whole (then the close); a request
  it cut short gets 400, an idle connection closes at once.
- **Limits.** A request head longer than ``h11_max_incomplete_size`` (16 KiB) gets 431, a request
  target that is not ASCII or an HTTP/1.1 request without a Host header 400, each with the connection
  closed; a method llhttp does not know (``BREW``) gets 501 (RFC 9110 §9.1) and never reaches the
  application (h11 let any token through, for a 405 later; one HTTP defines, PROPFIND say, still does).
- **Expect: 100-continue** is answered at once when the body has not arrived yet.
- **The response head** is checked header by header with h11's own two expressions (a header whose
  name or value would split the response is refused: the application's send fails, and hypercorn
  answers 500 in its place), and held back until the first bytes of the body, or the end of the
  message, so that a response leaves in one write. (The ASGI specification asks this of a server
  anyway: it "must not start sending the response to the client until it has received at least one
  Response Body event"; uvicorn does the same.) A streamed body still leaves chunk by chunk.
- **Upgrades** (a WebSocket, cleartext HTTP/2) are not taken: op-proxy has no WebSocket and runs
  behind a proxy that speaks HTTP/1.1 to it. Such a request is answered in HTTP/1.1 and its
  connection closed, as RFC 9110 §7.8 allows; HTTP/2 over TLS (ALPN) is still hypercorn's own.

Between two requests hypercorn waits for the connection's keep-alive timeout, or for the server to
stop, in a task of its own, started after every response and cancelled at the next request; its
wait was ``asyncio.wait_for``, which on Python 3.11 starts a second task around the wait.
``LighterTCPServer`` waits with ``asyncio.timeout`` instead, in the one task: the same two ways to
end (the timeout closes the connection; so does the server stopping), one task fewer per request.

Both are put where hypercorn creates its classes from (``hypercorn.protocol.H11Protocol``,
``hypercorn.asyncio.run.TCPServer``) by ``install()``; hypercorn is pinned in pyproject.toml, and
tests/test_http1.py fails if it stops creating them from there.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import httptools
import hypercorn.asyncio.run
import hypercorn.protocol

# h11's own expressions for a header's name and value (RFC 9110 §5.1, §5.5); h11 is pinned with
# hypercorn, and tests/test_http1.py fails if they stop refusing a line break.
from h11._headers import _field_name_re as FIELD_NAME
from h11._headers import _field_value_re as FIELD_VALUE
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Closed, RawData, Updated
from hypercorn.protocol.events import Body, EndBody, Request, Response, StreamClosed
from hypercorn.protocol.http_stream import HTTPStream

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


def status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES = {status: status_line(status) for status in range(100, 600)}
STREAM_ID = 1  # hypercorn's events carry a stream id; HTTP/1.1 has one stream at a time
NO_BODY_STATUSES = frozenset({204, 304})


class ResponseRefused(Exception):
    """The application's response cannot be sent as it is (a header that would split it, a body that
    does not match its Content-Length): its ``send`` fails, as it did with h11's LocalProtocolError."""


class RequestRefused(Exception):
    """A request op-proxy does not read on: answered with ``status``, and the connection closed."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def says_close(connection: bytes) -> bool:
    """Whether a Connection header's value has the ``close`` option (RFC 9110 §7.6.1)."""
    connection = connection.lower()
    return b"close" in connection and any(option.strip() == b"close" for option in connection.split(b","))


class ParsedHead:
    """A request head as the parser's callbacks found it."""

    __slots__ = ("method", "http_version", "target", "headers", "keep_alive", "expects_continue")

    def __init__(self, method: str, http_version: str, target: bytes, headers: list[tuple[bytes, bytes]]):
        self.method, self.http_version, self.target, self.headers = method, http_version, target, headers
        self.keep_alive = http_version == "1.1"
        self.expects_continue = False
        host = False
        for name, value in headers:
            if name == b"connection" and says_close(value):
                self.keep_alive = False
            elif name == b"host":
                host = True
            elif name == b"expect" and value.lower() == b"100-continue":
                self.expects_continue = http_version == "1.1"
        if (http_version == "1.1" and not host) or not target.isascii():
            raise RequestRefused(400)  # RFC 9112 §3.2; a target hypercorn could not decode


END = object()  # in what the callbacks found: the end of a request's body (a piece of it is bytes)


class HttptoolsProtocol:
    """hypercorn's HTTP/1.1 protocol (the interface of ``hypercorn.protocol.h11.H11Protocol``) on
    httptools: see the module's documentation for what it does as h11 did."""

    def __init__(self, app, config, context, task_group, connection_state, ssl, client, server, send):
        self.app, self.config, self.context, self.task_group = app, config, context, task_group
        self.connection_state, self.ssl, self.client, self.server = connection_state, ssl, client, server
        self.send = send
        self.parser = httptools.HttpRequestParser(self)
        # Data after a request that said "Connection: close" is ignored, not an error: that
        # connection closes after its answer anyway.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.parsed: list = []  # what the callbacks found in the bytes just handed in: heads, bytes, END
        self.keep_alive_requests = 0
        self.closed = False
        self.client_done = False  # the client closed its side of the connection
        self.upgrade_asked = False
        self.turn = context.event_class()  # set when the request being answered is done with
        # The request being read.
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = self._head_began_now = False
        self._head_bytes = 0
        # The request being answered.
        self.stream: HTTPStream | None = None
        self.request: ParsedHead | None = None
        self.request_complete = False
        self._reset_response()

    def _reset_response(self) -> None:
        self.response_started = self.response_complete = self.response_broken = False
        self.no_body = self.chunked = self.close_after = False
        self.remaining: int | None = None  # of the Content-Length still to send
        self._held = b""  # the response's head, waiting for its body

    # -- what hypercorn's TCP server calls ---------------------------------------------------------

    async def initiate(self) -> None:
        pass

    async def handle(self, event) -> None:
        if isinstance(event, RawData):
            if self.closed or self.upgrade_asked:  # after an upgrade: not HTTP/1.1, not read
                return
            if event.data:
                await self._received(event.data)
            else:  # hypercorn hands on the empty read: the client closed its side
                await self._client_closed_its_side()
        elif isinstance(event, Closed):
            self.closed = True
            await self.turn.set()
            await self._close_stream()

    async def stream_send(self, event) -> None:
        kind = type(event)
        if kind is Response:
            if event.status_code >= 200:
                self._held = self._response_head(event.status_code, event.headers)
                self.response_started = True
            else:  # an informational response (100 Continue) is written at once
                await self._write(self._head_lines(event.status_code, event.headers) + b"\r\n")
        elif kind is Body:
            await self._write(self._held + self._framed(event.data))
        elif kind is EndBody:
            await self._write(self._held + self._ended())
        elif kind is StreamClosed:
            await self._maybe_recycle()

    # -- reading requests --------------------------------------------------------------------------

    async def _received(self, data: bytes) -> None:
        self.parsed = []
        refused = None
        began_before = self._in_head
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.upgrade_asked = True  # what follows is not HTTP/1.1: this answer is the last
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            refused = cause.status if isinstance(cause, RequestRefused) else 400
        except httptools.HttpParserInvalidMethodError:
            refused = 501  # RFC 9110 §9.1: a method the server does not recognise
        except httptools.HttpParserError:
            refused = 400
        if self._in_head and refused is None:
            if began_before and not self._head_began_now:
                self._head_bytes += len(data)
            if self._head_bytes > self.config.h11_max_incomplete_size:
                refused = 431
        self._head_began_now = False
        parsed, self.parsed = self.parsed, []
        for index, item in enumerate(parsed):
            if type(item) is ParsedHead:
                await self._wait_for_turn()
                if self.closed:
                    return
                await self._start(item, body_arrived=index + 1 < len(parsed))
            elif item is END:
                self.request_complete = True
                if self.stream is not None:
                    await self.stream.handle(EndBody(stream_id=STREAM_ID))
            elif self.stream is not None:  # a piece of the body
                await self.stream.handle(Body(stream_id=STREAM_ID, data=item))
        if refused is not None:
            if self.stream is not None and self.request_complete:
                await self._wait_for_turn()  # the requests read whole before it are answered first
            if not self.closed:
                await self._refuse(refused)

    def on_message_begin(self) -> None:
        self._target, self._headers = b"", []
        self._in_head = self._head_began_now = True
        self._head_bytes = 0

    def on_url(self, piece: bytes) -> None:
        self._target += piece
        if self._head_began_now:  # a head that began earlier is counted by the bytes handed in
            self._head_bytes += len(piece)

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp leaves a value's trailing whitespace; h11 took it off (RFC 9110 §5.5).
        self._headers.append((name.lower(), value.rstrip(b" \t")))
        if self._head_began_now:
            self._head_bytes += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        self.parsed.append(ParsedHead(parser.get_method().decode("ascii"), parser.get_http_version(),
                                      self._target, self._headers))

    def on_body(self, body: bytes) -> None:
        self.parsed.append(body)

    def on_message_complete(self) -> None:
        self.parsed.append(END)

    async def _client_closed_its_side(self) -> None:
        """A request cut short gets 400, as h11 said; an idle connection closes at once; a request
        already read whole is still answered (a client may half-close once it has sent it), and then
        the connection closes."""
        self.client_done = True
        if self._in_head or (self.stream is not None and not self.request_complete):
            if self.stream is not None and self.request_complete:
                await self._wait_for_turn()  # the request before the one cut short is answered first
            if not self.closed:
                await self._refuse(400)
        elif self.stream is None:
            self.closed = True
            await self.send(Closed())

    async def _wait_for_turn(self) -> None:
        """A pipelined request waits until the one before it is answered (h11's PAUSED)."""
        while self.stream is not None and not self.closed:
            await self.turn.clear()
            await self.turn.wait()

    async def _start(self, head: ParsedHead, *, body_arrived: bool) -> None:
        await self.send(Updated(idle=False))
        self.request, self.request_complete = head, False
        self._reset_response()
        self.stream = HTTPStream(self.app, self.config, self.context, self.task_group, self.ssl, self.client,
                                 self.server, self.stream_send, STREAM_ID)
        await self.stream.handle(Request(stream_id=STREAM_ID, headers=head.headers, http_version=head.http_version,
                                         method=head.method, raw_path=head.target, state=self.connection_state))
        self.keep_alive_requests += 1
        await self.context.mark_request()
        if head.expects_continue and not body_arrived and self.stream is not None and not self.response_started:
            await self._write(self._head_lines(100, []) + b"\r\n")

    async def _refuse(self, status: int) -> None:
        """As hypercorn did for what h11 could not parse: an error answer unless one has begun, then close."""
        if not self.response_started:
            head = self._head_lines(status, [(b"content-length", b"0"), (b"connection", b"close")])
            await self._write(head + b"\r\n")
        self.closed = True
        await self.turn.set()
        await self.send(Closed())
        await self._close_stream()  # the application, if it was reading that request, is told

    # -- writing responses -------------------------------------------------------------------------

    def _head_lines(self, status: int, headers) -> bytes:
        lines = [STATUS_LINES.get(status) or status_line(status)]
        for name, value in (*headers, *self.config.response_headers("h11")):
            if not header_passes(name, value):
                raise ResponseRefused("a response header's name or value is not allowed")
            lines.append(b"%s: %s\r\n" % (name, value))
        return b"".join(lines)

    def _response_head(self, status: int, headers) -> bytes:
        """The head of a final response, with the framing its body will be sent in."""
        request = self.request
        length = None
        chunked = close = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise ResponseRefused("a response's Content-Length is not one number")
                length = int(value)
            elif lower == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise ResponseRefused("a response's Transfer-Encoding is not chunked")
                chunked = True
            elif lower == b"connection" and says_close(value):
                close = True
        no_body = status in NO_BODY_STATUSES or (request is not None and request.method == "HEAD")
        extra = []
        if chunked and length is not None:  # RFC 9112 §6.1: the encoding wins, the length is not sent
            headers = [(name, value) for name, value in headers if name.lower() != b"content-length"]
            length = None
        old_client = request is None or request.http_version != "1.1"
        if not no_body and length is None:
            if old_client:  # no chunks for HTTP/1.0: the body ends when the connection does
                headers = [(name, value) for name, value in headers if name.lower() != b"transfer-encoding"]
                chunked, close = False, True
            elif not chunked:
                chunked = True
                extra.append((b"transfer-encoding", b"chunked"))
        keep_alive = (request is not None and request.keep_alive and not self.upgrade_asked
                      and self.keep_alive_requests < self.config.keep_alive_max_requests)
        if not keep_alive or close:
            if not close:
                extra.append((b"connection", b"close"))
            close = True
        head = self._head_lines(status, [*headers, *extra]) + b"\r\n"
        self.no_body, self.chunked, self.close_after = no_body, chunked and not no_body, close
        self.remaining = None if no_body or chunked else length
        return head

    def _framed(self, data: bytes) -> bytes:
        if self.response_broken or self.response_complete:
            raise ResponseRefused("the response was already ended")
        if self.no_body or not data:
            return b""
        if self.chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        if self.remaining is not None:
            if len(data) > self.remaining:
                self._broken()
                raise ResponseRefused("more response body than its Content-Length")
            self.remaining -= len(data)
        return data

    def _ended(self) -> bytes:
        if self.response_broken:
            raise ResponseRefused("the response was already refused")
        if self.remaining:
            self._broken()
            raise ResponseRefused("less response body than its Content-Length")
        self.response_complete = True
        return b"0\r\n\r\n" if self.chunked else b""

    def _broken(self) -> None:
        """The response cannot be completed: nothing more is written, and the connection closes."""
        self.response_broken, self._held = True, b""

    async def _write(self, data: bytes) -> None:
        self._held = b""
        if data:
            await self.send(RawData(data=data))

    # -- between requests --------------------------------------------------------------------------

    async def _maybe_recycle(self) -> None:
        await self._close_stream()
        if (not self.context.terminated.is_set() and not self.closed and self.response_complete
                and self.request_complete and not self.close_after and not self.client_done):
            self.request = None
            self._reset_response()  # a request that cannot be read next gets its 400
            await self.turn.set()
            await self.send(Updated(idle=True))
        else:
            self.closed = True
            await self.turn.set()
            await self.send(Closed())

    async def _close_stream(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.handle(StreamClosed(stream_id=STREAM_ID))


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
    speaking HTTP/1.1 with HttptoolsProtocol."""
    hypercorn.asyncio.run.TCPServer = LighterTCPServer
    hypercorn.protocol.H11Protocol = HttptoolsProtocol
