"""op-proxy's application, as ``op-proxy serve`` builds it, for uvicorn (``make bench`` measures the
same app under another ASGI server, to see how much of a row is hypercorn's):

    BENCH_OP_PROXY_CONFIG=conf/dev.toml uvicorn bench.uvicorn_app:app --no-access-log

Only for the benchmark: op-proxy itself is served by ``op-proxy serve`` (hypercorn).
"""

from __future__ import annotations

import os

from op_proxy.app import create_app
from op_proxy.config import load_settings
from op_proxy.logs import configure as configure_logs
from op_proxy.serving import RequestBodyDeadline

settings = load_settings(os.environ["BENCH_OP_PROXY_CONFIG"])
configure_logs(settings.logging)
app = RequestBodyDeadline(create_app(settings), settings.server.read_timeout)
