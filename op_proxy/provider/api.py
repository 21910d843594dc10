"""The endpoints applications call — token, userinfo, introspection, revocation — answered below Quart.

These four carry nearly all of a busy deployment's requests, and each answer is a small JSON document
built from a small form: Quart's request context, URL matching, hooks and response object cost more
than the rest of a userinfo call (issue 9's profile). ``ApiEndpoints`` answers them straight from the
ASGI scope when the request is the ordinary kind: the endpoint's own method (GET or POST), a body that
is ``application/x-www-form-urlencoded`` UTF-8 within the size limit, no ``lang=``. Anything else —
a CORS preflight, HEAD, a method the endpoint does not take, another content type, a body over the
limit — goes on to the same handlers through their Quart routes, which answer it as before.

A handler sees an ``ApiRequest`` (typed, the same from either way in) and returns the JSON body, or
raises a ``Refusal``; both ways answer with the same headers, the same error bodies and the same CORS.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from quart import request
from werkzeug.datastructures import MultiDict

from op_proxy.errors import DATABASE_UNAVAILABLE, DatabaseUnavailable, Refusal
from op_proxy.logs import current_frame
from op_proxy.masking import loggable
from op_proxy.provider.responses import JSON_NO_STORE, cors_headers, oauth_json
from op_proxy.services import Services, services
from op_proxy.web import client_address

log = logging.getLogger("op_proxy")

FORM = "application/x-www-form-urlencoded"
SERVER_ERROR = {"error": "server_error"}  # RFC 6749 §4.1.2.1: the server met an unexpected condition


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What the endpoints applications call read of a request."""

    method: str
    mimetype: str  # the Content-Type without its parameters, lower case
    headers: dict[str, str]  # lower-case names; a repeated header's first value
    form: MultiDict  # the body's form (a POST); empty otherwise
    client_ip: str | None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")


Handler = Callable[[Services, ApiRequest], Awaitable[dict]]


class FormFields(MultiDict):
    """A request's form as the handlers read it. werkzeug's ``MultiDict.get`` finds a missing name
    by raising and catching its ``BadRequestKeyError`` (an HTTP exception, made with its page text),
    and a token call asks for several names it was not sent (code_verifier, client_assertion...)."""

    def get(self, key, default=None, type=None):  # noqa: A002 - MultiDict's own signature
        if not dict.__contains__(self, key):
            return default
        return super().get(key, default, type)


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    handler: Handler
    methods: frozenset[str]
    cors: bool  # a browser application may call it (CORS for its registered origins)

    def routed(self, blueprint) -> Endpoint:
        """Also a Quart route, for the requests the lane passes on (its hooks answer CORS there)."""
        blueprint.add_url_rule(self.path, view_func=quart_view(self.handler), methods=sorted(self.methods))
        return self


def json_answer(body: dict, headers: dict | None = None) -> tuple[bytes, dict]:
    return orjson.dumps(body), ({**JSON_NO_STORE, **headers} if headers else JSON_NO_STORE)


def answer_refusal(error: Refusal) -> tuple[int, bytes, dict]:
    """How an endpoint applications call answers a refusal: RFC 6749 §5.2 JSON with its headers."""
    body, headers = json_answer(error.body(), error.headers)
    return error.status, body, headers


def database_outage(failure: Exception, path: str) -> DatabaseUnavailable:
    # Only the kind of failure: an SQLAlchemy message carries the statement and its parameters.
    cause = getattr(failure, "orig", None) or failure
    code = cause.args[0] if cause.args and isinstance(cause.args[0], int) else None
    log.warning("database unavailable: %s (%s %s) path=%s", type(failure).__name__, type(cause).__name__,
                code, loggable(path))
    return DatabaseUnavailable()


# -- through Quart (what the lane passes on) -----------------------------------------------------

async def from_quart() -> ApiRequest:
    form = await request.form if request.method == "POST" else MultiDict()
    headers = {name.lower(): value for name, value in reversed(list(request.headers.items()))}
    return ApiRequest(request.method, request.mimetype.lower(), headers, form,
                      client_address(services().settings.server.trusted_proxies, request.remote_addr,
                                     request.headers.getlist("X-Forwarded-For")))


def quart_view(handler: Handler):
    """The Quart route of an endpoint: the same handler, for the requests the lane passes on."""
    async def view():
        return oauth_json(await handler(services(), await from_quart()))

    view.__name__ = handler.__name__
    return view


# -- the lane ------------------------------------------------------------------------------------

class ApiEndpoints:
    """ASGI, in front of Quart (behind ``logs.EveryRequest``): the ordinary requests to the endpoints
    applications call, answered from the scope; everything else goes on to ``app``."""

    def __init__(self, quart, svc: Services, endpoints: list[Endpoint]):
        self.quart, self.app, self.svc = quart, quart.asgi_app, svc
        self.body_limit: int | None = quart.config["MAX_CONTENT_LENGTH"]
        self.endpoints = {endpoint.path: endpoint for endpoint in endpoints}

    async def __call__(self, scope, receive, send):
        endpoint = self.endpoints.get(scope.get("path")) if scope["type"] == "http" else None
        if (endpoint is None or scope["method"] not in endpoint.methods or b"lang=" in scope["query_string"]
                or scope.get("root_path")):
            return await self.app(scope, receive, send)
        headers: dict[str, str] = {}
        forwarded: list[str] = []
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name == "x-forwarded-for":
                forwarded.append(value)
            headers.setdefault(name, value)
        mimetype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if scope["method"] == "POST" and mimetype != FORM:
            return await self.app(scope, receive, send)
        received: list[dict] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or serving.RequestBodyDeadline answered 408)
            received.append(message)
            size += len(message.get("body", b""))
            if self.body_limit is not None and size > self.body_limit:
                return await self.app(scope, replaying(received, receive), send)  # Quart answers 413
            if not message.get("more_body", False):
                break
        body = b"".join(message.get("body", b"") for message in received)
        try:
            form = FormFields(parse_form(body) if scope["method"] == "POST" else ())
        except UnicodeDecodeError:
            return await self.app(scope, replaying(received, receive), send)
        client = scope.get("client")
        api_request = ApiRequest(scope["method"], mimetype, headers, form, client_address(
            self.svc.settings.server.trusted_proxies, client[0] if client else None, forwarded))
        if (frame := current_frame()) is not None:
            frame.route = scope["path"]
        status, payload, answer_headers = await self.answer(endpoint, api_request, scope["path"])
        if endpoint.cors:
            answer_headers = {**answer_headers, **await cors_headers(self.svc.db, api_request.origin,
                                                                     answer_headers.get("Vary"))}
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer_headers.items()]
        raw.append((b"content-length", str(len(payload)).encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})

    async def answer(self, endpoint: Endpoint, api_request: ApiRequest, path: str) -> tuple[int, bytes, dict]:
        try:
            body, headers = json_answer(await endpoint.handler(self.svc, api_request))
            return 200, body, headers
        except Refusal as error:
            return answer_refusal(error)
        except DATABASE_UNAVAILABLE as failure:
            return answer_refusal(database_outage(failure, path))
        except Exception:
            # As Quart answers a view that fails (Quart.handle_exception, with responses.answer_server_error):
            # raised on when testing or debugging, else the traceback to the log and a 500 to the client.
            propagate = self.quart.config["PROPAGATE_EXCEPTIONS"]
            if propagate or (propagate is None and (self.quart.testing or self.quart.debug)):
                raise
            self.quart.logger.error("Exception on request %s %s", api_request.method, loggable(path), exc_info=True)
            return 500, *json_answer(SERVER_ERROR)


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """As Quart parses a urlencoded form (UTF-8, blank values kept)."""
    return parse_qsl(body.decode(), keep_blank_values=True)


def replaying(received: list[dict], receive):
    """``receive`` for the application, giving back what the lane already read first."""
    pending = list(received)

    async def receive_again():
        if pending:
            return pending.pop(0)
        return await receive()

    return receive_again
