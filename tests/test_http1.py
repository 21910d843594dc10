"""What an HTTP/1.1 client receives from ``op-proxy serve`` (op_proxy.http1): requests read by httptools
as h11 read them (pipelined ones in order, chunked bodies, HTTP/1.0, ``Expect: 100-continue``, the head
limit, and 400, 431 or 501 with the connection closed for what cannot be read one way only); each
response written to the socket once, head and body together, framed by its Content-Length or in
chunks, never more or less than it declares; an idle keep-alive connection is still closed after its
timeout, and at once when the server stops or the client closes its side.

Most drive hypercorn's own connection machinery (``ProtocolWrapper``, as its TCP server creates it)
with the bytes a client sends, and record what it hands to the socket; the keep-alive ones serve on
a real socket."""

from __future__ import annotations

import asyncio

import hypercorn.asyncio.run
import hypercorn.protocol
import pytest
from hypercorn.asyncio.run import worker_serve
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from op_proxy import http1
from tests.support.server import free_port

GET = b"GET /hello HTTP/1.1\r\nHost: op.example\r\n\r\n"


@pytest.fixture(autouse=True)
def lighter_hypercorn(monkeypatch):
    monkeypatch.setattr(hypercorn.protocol, "H11Protocol", hypercorn.protocol.H11Protocol)  # undone after
    monkeypatch.setattr(hypercorn.asyncio.run, "TCPServer", hypercorn.asyncio.run.TCPServer)
    http1.install()


def answering(*body_messages, status=200, headers=((b"content-type", b"text/plain"),)):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        for message in body_messages:
            await send({"type": "http.response.body", **message})
    return app


CLOSED = b"<the server closed the connection>"


def socket_writes(app, *client_sends: bytes, config: Config | None = None) -> list[bytes]:
    """What hypercorn writes to the client's socket, write by write, for these bytes from the client;
    ``CLOSED`` where it closes the connection."""
    writes: list[bytes] = []

    async def to_socket(event):
        if isinstance(event, RawData):
            writes.append(event.data)
        elif isinstance(event, Closed):
            writes.append(CLOSED)

    async def converse():
        async with TaskGroup(asyncio.get_running_loop()) as task_group:
            connection = hypercorn.protocol.ProtocolWrapper(
                wrap_app(app, 2**20, "asgi"), config or Config(), WorkerContext(None), task_group, ConnectionState({}),
                False, ("127.0.0.1", 50000), ("127.0.0.1", 8080), to_socket)
            for data in client_sends:
                await connection.handle(RawData(data))
                await asyncio.sleep(0.01)  # the application's task runs

    asyncio.run(converse())
    return writes


def test_hypercorn_creates_the_httptools_protocol_for_every_http1_connection():
    # If a hypercorn upgrade creates its HTTP/1.1 protocol from elsewhere, this fails, not the speed.
    async def created():
        async def to_socket(_event):
            pass
        async with TaskGroup(asyncio.get_running_loop()) as task_group:
            return hypercorn.protocol.ProtocolWrapper(
                answering(), Config(), WorkerContext(None), task_group, ConnectionState({}), False, None, None,
                to_socket).protocol
    assert type(asyncio.run(created())) is http1.HttptoolsProtocol


LENGTH_12 = ((b"content-type", b"text/plain"), (b"content-length", b"12"))


def test_a_response_leaves_in_one_write_with_its_head_and_its_body():
    # Every answer op-proxy gives has its length: the whole response is one write.
    writes = socket_writes(answering({"body": b"hello, world"}, headers=LENGTH_12), GET)
    assert len(writes) == 1
    head, body = writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 12" in head.lower()
    assert body == b"hello, world"


def test_a_response_with_a_length_and_a_final_empty_message_is_still_one_write():
    # Quart's way: the body, then an empty last message.
    app = answering({"body": b"{}", "more_body": True}, {"body": b"", "more_body": False},
                    headers=((b"content-length", b"2"),))
    writes = socket_writes(app, GET)
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 ") and writes[0].endswith(b"\r\n\r\n{}")


def test_a_streamed_body_still_leaves_chunk_by_chunk_the_head_with_the_first():
    # No length given: chunked, as hypercorn always did; only the head waits, for the first chunk.
    app = answering({"body": b"first", "more_body": True}, {"body": b"second", "more_body": True},
                    {"body": b"", "more_body": False})
    writes = socket_writes(app, GET)
    assert len(writes) == 3
    assert writes[0].startswith(b"HTTP/1.1 200 ") and writes[0].endswith(b"\r\n\r\n5\r\nfirst\r\n")
    assert writes[1:] == [b"6\r\nsecond\r\n", b"0\r\n\r\n"]


def test_a_response_without_a_body_is_written_whole():
    writes = socket_writes(answering({"body": b""}, status=204, headers=()), GET)
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 204 ") and writes[0].endswith(b"\r\n\r\n")


def test_keep_alive_answers_each_request_of_a_connection_in_one_write_in_order():
    writes = socket_writes(answering({"body": b"hello, world"}, headers=LENGTH_12), GET, GET)
    assert len(writes) == 2
    assert all(write.startswith(b"HTTP/1.1 200 ") and write.endswith(b"\r\n\r\nhello, world") for write in writes)


def test_a_client_waiting_for_100_continue_gets_it_before_it_sends_the_body():
    upload = (b"POST /hello HTTP/1.1\r\nHost: op.example\r\nContent-Length: 4\r\n"
              b"Expect: 100-continue\r\n\r\n")
    writes = socket_writes(answering({"body": b"hello, world"}, headers=LENGTH_12), upload, b"data")
    assert writes[0].startswith(b"HTTP/1.1 100 ")  # not held back with the final response
    assert len(writes) == 2 and writes[1].startswith(b"HTTP/1.1 200 ")


# -- keep-alive ------------------------------------------------------------------------------------

async def served(keep_alive_timeout: float, story) -> None:
    """``story(port, stop)`` against hypercorn serving on a real socket; ``stop`` is an asyncio.Event."""
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.keep_alive_timeout = keep_alive_timeout
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    server = asyncio.create_task(worker_serve(wrap_app(answering({"body": b"hello, world"}, headers=LENGTH_12),
                                                       2**20, "asgi"), config, shutdown_trigger=stop.wait))
    for _ in range(200):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    try:
        await story(port, stop)
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)


async def answered_then_kept(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GET)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and await reader.readexactly(12) == b"hello, world"
    return reader, writer


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(monkeypatch):
    waits = []
    lighter_wait = http1.LighterTCPServer._idle_timeout

    async def noted(server):
        waits.append(type(server))
        await lighter_wait(server)

    monkeypatch.setattr(http1.LighterTCPServer, "_idle_timeout", noted)

    async def story(port, _stop):
        reader, writer = await answered_then_kept(port)
        assert await asyncio.wait_for(reader.read(), 20) == b""  # the server closed it (timeout 0.5 s)
        writer.close()

    asyncio.run(served(0.5, story))
    assert waits and set(waits) == {http1.LighterTCPServer}  # hypercorn made its connection ours


def test_a_stopping_server_closes_idle_keep_alive_connections_at_once():
    async def story(port, stop):
        reader, writer = await answered_then_kept(port)
        stop.set()  # SIGTERM, say: the connection's 600 s of keep-alive are not waited for
        assert await asyncio.wait_for(reader.read(), 20) == b""
        writer.close()

    asyncio.run(served(600, story))


# -- the response head -----------------------------------------------------------------------------

def test_the_response_head_carries_every_header_the_application_gave_as_it_gave_them():
    headers = ((b"content-type", b"application/json"), (b"Cache-Control", b"no-store"),
               (b"x-request-id", b"a1b2c3d4e5f6"), (b"content-length", b"2"))
    writes = socket_writes(answering({"body": b"{}"}, headers=headers), GET)
    head = writes[0].split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 200 OK"
    assert [b"content-type: application/json", b"Cache-Control: no-store", b"x-request-id: a1b2c3d4e5f6",
            b"content-length: 2"] == head[1:5]
    assert any(line.startswith(b"date: ") for line in head)  # hypercorn's own headers follow


@pytest.mark.parametrize("header", [(b"x-note", b"fine\r\nset-cookie: session=stolen"),
                                    (b"x-note", b"fine\nset-cookie: session=stolen"),
                                    (b"x-note\r\nset-cookie", b"session=stolen"),
                                    (b"x note", b"fine")])
def test_a_header_that_would_split_the_response_never_reaches_the_client(header):
    # An application bug (a value taken from a request, say) must not let anyone write headers of
    # their own: h11 refuses the response, and hypercorn answers 500 in its place.
    writes = socket_writes(answering({"body": b"{}"}, headers=(header, (b"content-length", b"2"))), GET)
    sent = b"".join(writes)
    assert b"session=stolen" not in sent
    assert sent.startswith(b"HTTP/1.1 500 ")


def test_a_header_answered_well_before_is_still_refused_when_its_value_would_split_a_response():
    # Headers that passed are remembered (most are the same on every response): only as they were.
    good = (b"x-note", b"fine")
    assert socket_writes(answering({"body": b"{}"}, headers=(good, (b"content-length", b"2"))), GET)[0] \
        .startswith(b"HTTP/1.1 200 ")
    split = (b"x-note", b"fine\r\nset-cookie: session=stolen")
    sent = b"".join(socket_writes(answering({"body": b"{}"}, headers=(split, (b"content-length", b"2"))), GET))
    assert sent.startswith(b"HTTP/1.1 500 ") and b"session=stolen" not in sent


def test_the_memory_of_headers_that_passed_stays_bounded():
    for number in range(3 * http1.PASSED_HEADERS_LIMIT):
        assert http1.header_passes(b"x-request-id", b"%012x" % number)
    assert len(http1.PASSED_HEADERS) <= http1.PASSED_HEADERS_LIMIT
    assert not http1.header_passes(b"x-request-id", b"a\nb")


def test_conflicting_lengths_are_refused_as_before():
    # Framing stays h11's: two different Content-Lengths are an error, never two readings of one body.
    headers = ((b"content-length", b"2"), (b"content-length", b"3"))
    sent = b"".join(socket_writes(answering({"body": b"{}"}, headers=headers), GET))
    assert sent.startswith(b"HTTP/1.1 500 ") and b"\r\n\r\n{}" not in sent


def test_a_connection_at_its_request_limit_is_told_it_closes():
    config = Config()
    config.keep_alive_max_requests = 1
    writes = socket_writes(answering({"body": b"hello, world"}, headers=LENGTH_12), GET, config=config)
    assert writes and b"connection: close" in writes[0].split(b"\r\n\r\n", 1)[0].lower()


# -- reading requests (httptools) ------------------------------------------------------------------

def echoing(seen: list | None = None):
    """Answers each request with its method, target, body and ``x-note`` header, as the app saw them."""
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if seen is not None:
                seen.append(message["type"])
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        note = dict(scope["headers"]).get(b"x-note", b"-")
        answer = b"%s %s %s [%s]" % (scope["method"].encode(), scope["raw_path"], note, body)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
    return app


def bodies(writes: list[bytes]) -> list[bytes]:
    return [write.split(b"\r\n\r\n", 1)[1] for write in writes if write != CLOSED]


def test_pipelined_requests_are_answered_one_after_another_in_order():
    sent = (b"GET /first HTTP/1.1\r\nHost: op.example\r\n\r\n"
            b"POST /second HTTP/1.1\r\nHost: op.example\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /third HTTP/1.1\r\nHost: op.example\r\n\r\n")
    writes = socket_writes(echoing(), sent)
    assert bodies(writes) == [b"GET /first - []", b"POST /second - [hello]", b"GET /third - []"]
    assert CLOSED not in writes  # kept alive for the next


def test_a_chunked_request_body_reaches_the_application_whole_across_reads():
    head = b"POST /upload HTTP/1.1\r\nHost: op.example\r\nTransfer-Encoding: chunked\r\n\r\n"
    writes = socket_writes(echoing(), head + b"5\r\nhel", b"lo\r\n6\r\n, worl\r\n", b"1\r\nd\r\n0\r\n\r\n")
    assert bodies(writes) == [b"POST /upload - [hello, world]"]


def test_a_header_value_reaches_the_application_without_the_spaces_around_it():
    writes = socket_writes(echoing(), b"GET / HTTP/1.1\r\nHost: op.example\r\nX-Note:   padded \t \r\n\r\n")
    assert bodies(writes) == [b"GET / padded []"]


def test_an_http10_request_is_answered_and_its_connection_closed():
    writes = socket_writes(echoing(), b"GET /old HTTP/1.0\r\n\r\n", GET)
    assert writes[-1] == CLOSED and len(writes) == 2  # the GET after it is not read
    head, body = writes[0].split(b"\r\n\r\n", 1)
    assert b"connection: close" in head.lower() and body == b"GET /old - []"


def test_a_response_without_a_length_to_an_http10_client_ends_when_the_connection_does():
    writes = socket_writes(answering({"body": b"first", "more_body": True}, {"body": b"", "more_body": False}),
                           b"GET /old HTTP/1.0\r\n\r\n")
    head, body = writes[0].split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head.lower() and body == b"first"
    assert writes[-1] == CLOSED


@pytest.mark.parametrize("connection", [b"close", b"Close", b"keep-alive, close"])
def test_a_client_asking_to_close_gets_its_answer_then_the_connection_closes(connection):
    closing = b"GET / HTTP/1.1\r\nHost: op.example\r\nConnection: %s\r\n\r\n" % connection
    writes = socket_writes(echoing(), closing + GET)
    assert len(writes) == 2 and writes[-1] == CLOSED
    assert b"connection: close" in writes[0].lower()


def test_a_connection_option_that_only_contains_close_keeps_the_connection():
    writes = socket_writes(echoing(), b"GET / HTTP/1.1\r\nHost: op.example\r\nConnection: x-closed\r\n\r\n" + GET)
    assert len(bodies(writes)) == 2 and CLOSED not in writes


@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\nHost: op.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: op.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"GET / HTTP/1.1\r\nHost: op.example\r\nX-Note: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: op.example\r\nX-Note: a\x00b\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: op.example\r\n\r\n",
    b"GET /\xe0\xb8\x81 HTTP/1.1\r\nHost: op.example\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # RFC 9112 §3.2: HTTP/1.1 needs a Host
])
def test_a_request_that_cannot_be_read_one_way_only_gets_400_and_the_connection_closed(request_bytes):
    seen: list = []
    writes = socket_writes(echoing(seen), request_bytes)
    assert writes[0].startswith(b"HTTP/1.1 400 ") and writes[-1] == CLOSED
    assert seen == []  # the application never saw it


def test_a_request_that_cannot_be_read_after_one_answered_on_the_connection_still_gets_400():
    writes = socket_writes(echoing(), GET, b"GET / HTTP/1.1\r\nHost: op.example\r\nX-Note: a\x00b\r\n\r\n")
    assert writes[0].startswith(b"HTTP/1.1 200 ") and writes[1].startswith(b"HTTP/1.1 400 ")
    assert writes[-1] == CLOSED


def test_requests_read_whole_before_one_that_cannot_be_read_are_answered_first_in_order():
    writes = socket_writes(echoing(), GET + GET + b"GET / HTTP/1.1\r\nHost: op.example\r\nX-Note: a\x00b\r\n\r\n")
    assert bodies(writes[:2]) == [b"GET /hello - []", b"GET /hello - []"]
    assert writes[2].startswith(b"HTTP/1.1 400 ") and writes[3:] == [CLOSED]


def test_a_method_nobody_defined_gets_501_and_never_reaches_the_application():
    seen: list = []
    writes = socket_writes(echoing(seen), b"BREW /pot HTTP/1.1\r\nHost: op.example\r\n\r\n")
    assert writes[0].startswith(b"HTTP/1.1 501 ") and writes[-1] == CLOSED and seen == []
    tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # on the plain port: read as a method
    writes = socket_writes(echoing(seen), tls_hello)
    assert writes[0].startswith(b"HTTP/1.1 501 ") and writes[-1] == CLOSED and seen == []
    assert bodies(socket_writes(echoing(), b"PROPFIND /dav HTTP/1.1\r\nHost: op.example\r\n\r\n")) == \
        [b"PROPFIND /dav - []"]  # one HTTP defines is the application's to refuse


def test_a_request_head_longer_than_the_limit_gets_431_without_being_kept_whole():
    config = Config()
    config.h11_max_incomplete_size = 4096
    seen: list = []
    pieces = [b"GET / HTTP/1.1\r\nHost: op.example\r\nX-Note: "] + [b"a" * 1024] * 8
    writes = socket_writes(echoing(seen), *pieces, config=config)
    assert writes[0].startswith(b"HTTP/1.1 431 ") and writes[-1] == CLOSED
    assert seen == []


def test_a_request_head_just_under_the_limit_is_read_even_in_small_pieces():
    config = Config()
    config.h11_max_incomplete_size = 4096
    head = b"GET / HTTP/1.1\r\nHost: op.example\r\nX-Note: " + b"a" * 3900 + b"\r\n\r\n"
    pieces = [head[i:i + 100] for i in range(0, len(head), 100)]
    writes = socket_writes(echoing(), GET + pieces[0], *pieces[1:], config=config)
    assert [body[:12] for body in bodies(writes)] == [b"GET /hello -", b"GET / " + b"a" * 6]


def test_an_upgrade_is_not_taken_the_request_is_answered_in_http11_and_the_connection_closed():
    seen: list = []
    upgrade = (b"GET /socket HTTP/1.1\r\nHost: op.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x85frame")
    writes = socket_writes(echoing(seen), upgrade, b"\x81\x85frame")  # the client's frames go on arriving
    assert writes[0].startswith(b"HTTP/1.1 200 ") and bodies(writes) == [b"GET /socket - []"]
    assert len(writes) == 2 and writes[-1] == CLOSED


def test_the_answer_to_head_carries_no_body():
    writes = socket_writes(answering({"body": b"hello, world"}, headers=LENGTH_12),
                           b"HEAD /hello HTTP/1.1\r\nHost: op.example\r\n\r\n", GET)
    assert writes[0].endswith(b"\r\n\r\n") and b"content-length: 12" in writes[0].lower()
    assert writes[1].endswith(b"\r\n\r\nhello, world")  # and the connection went on


def test_a_body_longer_than_its_content_length_is_never_sent_and_the_connection_closes():
    writes = socket_writes(answering({"body": b"hello, world"}, headers=((b"content-length", b"5"),)), GET, GET)
    assert b"hello, world" not in b"".join(writes) and writes[-1] == CLOSED


def test_a_body_shorter_than_its_content_length_ends_the_connection_not_the_next_answer():
    writes = socket_writes(answering({"body": b"hi"}, headers=LENGTH_12), GET, GET)
    assert writes.count(CLOSED) == 1 and writes[-1] == CLOSED
    assert sum(write.startswith(b"HTTP/1.1 200 ") for write in writes) == 1


def test_an_application_that_closes_the_connection_gets_it_closed_after_its_answer():
    headers = (*LENGTH_12, (b"connection", b"close"))
    writes = socket_writes(answering({"body": b"hello, world"}, headers=headers), GET, GET)
    assert len(writes) == 2 and writes[-1] == CLOSED and writes[0].endswith(b"hello, world")


def test_an_answer_given_before_the_body_arrived_whole_closes_the_connection():
    # The rest of the body would be read as the next request: the connection ends instead.
    upload = b"POST /hello HTTP/1.1\r\nHost: op.example\r\nContent-Length: 100\r\n\r\nsome"

    async def early(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
    writes = socket_writes(early, upload)
    assert writes[0].startswith(b"HTTP/1.1 413 ") and writes[-1] == CLOSED


EOF = b""  # what hypercorn hands on when the client closes its side of the connection


def test_a_client_that_sent_its_request_and_closed_its_side_still_gets_the_answer_then_the_close():
    writes = socket_writes(echoing(), GET, EOF)
    assert bodies(writes) == [b"GET /hello - []"] and writes[-1] == CLOSED


def test_a_request_cut_short_by_the_client_closing_gets_400_and_the_close():
    for cut in (b"GET /hello HTTP/1.1\r\nHost: op.exa",
                b"POST / HTTP/1.1\r\nHost: op.example\r\nContent-Length: 9\r\n\r\nabc"):
        writes = socket_writes(echoing(), cut, EOF)
        assert writes[0].startswith(b"HTTP/1.1 400 ") and writes[-1] == CLOSED


def test_a_request_read_whole_before_one_cut_short_is_answered_first():
    async def slow(scope, receive, send):
        await asyncio.sleep(0.05)  # still answering when the client closes its side
        await echoing()(scope, receive, send)
    writes = socket_writes(slow, GET + b"GET /next HTTP/1.1\r\nHost: op.ex", EOF)
    assert writes[0].startswith(b"HTTP/1.1 200 ") and bodies(writes)[0] == b"GET /hello - []"
    assert writes[-1] == CLOSED


def test_an_idle_connection_the_client_closes_is_closed_at_once():
    assert socket_writes(echoing(), GET, EOF)[-1] == CLOSED
    assert socket_writes(echoing(), EOF) == [CLOSED]


def test_a_client_gone_mid_body_is_told_to_the_application():
    seen: list = []

    async def converse():
        async def to_socket(_event):
            pass
        async with TaskGroup(asyncio.get_running_loop()) as task_group:
            connection = hypercorn.protocol.ProtocolWrapper(
                wrap_app(echoing(seen), 2**20, "asgi"), Config(), WorkerContext(None), task_group,
                ConnectionState({}), False, ("127.0.0.1", 50000), ("127.0.0.1", 8080), to_socket)
            await connection.handle(RawData(b"POST / HTTP/1.1\r\nHost: op.example\r\nContent-Length: 10\r\n\r\nabc"))
            await asyncio.sleep(0.01)
            await connection.handle(Closed())
            await asyncio.sleep(0.01)

    asyncio.run(converse())
    assert seen == ["http.request", "http.disconnect"]
