"""The admin panel (Quart blueprint under ``/admin``), served by the op-proxy process itself."""

from __future__ import annotations

import importlib
from functools import cache

# One module a page, each with attach(blueprint); home.MENU lists what the navigation shows.
PAGES = ("auth", "home", "clients", "audit", "upstreams", "keys", "users")


def register(app) -> None:
    app.register_blueprint(panel())


@cache
def panel():
    """The blueprint with every page attached, once per process: a blueprint takes no new routes
    after its first registration, and a second application (a test's) registers the same one."""
    from admin import formatting
    from admin.blueprint import blueprint

    formatting.register(blueprint)  # the filters every page's templates use
    for name in PAGES:
        importlib.import_module(f"admin.{name}").attach(blueprint)
    return blueprint
