"""The one blueprint every admin page hangs off; its templates live under ``templates/admin/``."""

from quart import Blueprint, request

blueprint = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
                      static_folder="static", static_url_path="/static")


@blueprint.after_request
async def never_cached(response):
    """Panel pages hold secrets shown once and people's data: no browser or proxy may keep a copy."""
    if not request.path.startswith("/admin/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response
