"""How Quart meets each HTTP request: the body first, then the view, in the request's own task.

Quart's own connection runs two tasks per request (one receives the body, one runs the view) and
waits on both, and on Python 3.11 ``asyncio.wait_for`` adds a task around the response and another
around every wait for the body: about a tenth of the CPU of a token, userinfo or introspection call
(issue 9's profile). Every body op-proxy takes is a small form or JSON document, so this connection
reads it whole first and then runs the view in the same task.

What changes, and why it is safe here:
- The body's size limit is still Quart's ``MAX_CONTENT_LENGTH``: reading stops at the limit and the
  view answers 413 as before. Its deadline is ``serving.RequestBodyDeadline``'s, which answers 408
  and reports a disconnect: no view runs for a body that stopped arriving.
- A client that disconnects while its view runs no longer cancels the view: every view is short and
  bounded (database statements and upstream calls have timeouts), and finishing it keeps a flow's
  state consistent rather than cut at an arbitrary ``await``.
- The response's timeout (``RESPONSE_TIMEOUT``) is kept, with ``asyncio.timeout`` (no extra task).
"""

from __future__ import annotations

import asyncio

from quart.asgi import ASGIHTTPConnection, _handle_exception
from quart.wrappers import Response


class BodyFirstConnection(ASGIHTTPConnection):
    async def __call__(self, receive, send) -> None:
        request = self._create_request_from_scope(send)
        limit = self.app.config["MAX_CONTENT_LENGTH"]
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or RequestBodyDeadline answered 408): no view runs
            chunk = message.get("body", b"")
            received += len(chunk)
            request.body.append(chunk)
            if not message.get("more_body", False) or (limit is not None and received > limit):
                request.body.set_complete()  # over the limit, Body answers 413 when the view reads it
                break
        await self.handle_request(request, send)

    async def handle_request(self, request, send) -> None:
        try:
            response = await self.app.handle_request(request)
        except Exception as error:  # Quart's own last resort: its 500 page
            response = await _handle_exception(self.app, error)
        if isinstance(response, Response) and response.timeout != Ellipsis:
            timeout = response.timeout
        else:
            timeout = self.app.config["RESPONSE_TIMEOUT"]
        try:
            async with asyncio.timeout(timeout):
                await self._send_response(send, response)
        except TimeoutError:
            pass


def use_body_first_connections(app) -> None:
    app.asgi_http_class = BodyFirstConnection
    # The body is whole before any view runs (see above), so waiting for it needs no deadline of its
    # own; with None, Quart awaits it directly instead of through asyncio.wait_for's extra task.
    app.config["BODY_TIMEOUT"] = None
