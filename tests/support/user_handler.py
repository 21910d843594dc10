"""An application's user handler, as the old gateway's contract has it (docs/applications.md): at every
sign-in op-proxy POSTs the person it signed in, with the app's X-API-SECRET, and the app answers with its
own record of them and their role."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.server import free_port


def an_editor(user: dict) -> dict:
    """The app's record of anyone it is asked about: number 7, an editor."""
    return {"id": 7, "username": user["username"], "role": "editor"}


class UserHandlerApp:
    """The app's user API on a port of its own. It answers only the ``api_secret`` it was given (compared
    in constant time, as an app should; none given: it lets no one in) with ``record(normalizedUser)``;
    ``failing`` makes it answer 500."""

    def __init__(self, api_secret: str | None = None, record: Callable[[dict], dict] = an_editor):
        self.api_secret, self.record = api_secret, record
        self.failing = False
        self.received: list[dict] = []  # what op-proxy sent that was let in, with its Content-Type
        self.secrets_sent: list[str] = []  # the X-API-SECRET of every request, let in or not
        port, app = free_port(), self
        self.url = f"http://127.0.0.1:{port}/api/user-handler"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                app.secrets_sent.append(self.headers.get("X-API-SECRET", ""))
                if app.failing or not app.lets_in(self.headers.get("X-API-SECRET", "")):
                    self.send_response(500 if app.failing else 401)
                    self.end_headers()
                    return
                app.received.append({"content_type": self.headers["Content-Type"], **body})
                data = json.dumps(app.record(body["normalizedUser"])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def lets_in(self, sent: str) -> bool:
        return bool(self.api_secret) and hmac.compare_digest(sent.encode(), self.api_secret.encode())

    @property
    def asked_about(self) -> list[str]:
        """The usernames of the people it answered for, in order."""
        return [sent["normalizedUser"]["username"] for sent in self.received]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
