"""A tiny static server for the single-page app (Python's standard library only).

    python3 serve.py        # then open http://127.0.0.1:5173/ (beside op-proxy's `make run`)

It serves this folder, answers ``/callback`` with the app's page (the redirect URI registered for
``demo-spa``), and ``/config.json`` from the environment, so the same files work with any op-proxy.
"""

import json
import os
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = int(os.environ.get("PORT", "5173"))
CONFIG = {
    "issuer": os.environ.get("OP_PROXY_ISSUER", "http://127.0.0.1:8080"),
    "client_id": os.environ.get("CLIENT_ID", "demo-spa"),
    "app_url": os.environ.get("APP_URL", f"http://127.0.0.1:{PORT}"),
}
FILES = {"/": "index.html", "/callback": "index.html", "/app.js": "app.js",
         "/vendor/oidc-client-ts.min.js": "vendor/oidc-client-ts.min.js"}


class Handler(SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the standard library's name)
        path = self.path.split("?", 1)[0]
        if path == "/config.json":
            body = json.dumps(CONFIG).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path not in FILES:
            self.send_error(404)
            return
        self.path = "/" + FILES[path]
        super().do_GET()

    def end_headers(self):
        # Only this origin's scripts; fetches go to op-proxy (connect-src) and nowhere else.
        self.send_header("Content-Security-Policy", f"default-src 'self'; connect-src 'self' {CONFIG['issuer']}; "
                         "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), partial(Handler, directory=str(Path(__file__).parent)))
    print(f"Single-page app at {CONFIG['app_url']}/", flush=True)
    server.serve_forever()
