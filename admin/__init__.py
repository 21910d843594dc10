"""The admin panel (Quart blueprint under ``/admin``), served by the op-proxy process itself."""

from __future__ import annotations

import importlib

# One module a page, each with attach(blueprint); home.MENU lists what the navigation shows.
PAGES = ("auth", "home", "clients", "audit", "upstreams", "keys", "users")


def register(app) -> None:
    from admin.blueprint import blueprint

    for name in PAGES:
        importlib.import_module(f"admin.{name}").attach(blueprint)
    app.register_blueprint(blueprint)
