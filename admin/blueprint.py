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


@blueprint.after_request
async def forms_post_only_to_the_panel(response):
    """Every panel form posts to the panel and is answered with a redirect within it (the SSO and test
    sign-ins are links, not forms), so a form an injected tag planted cannot send to another site
    (CSP ``form-action``, which browsers also apply to the redirects that answer the form)."""
    from op_proxy.web import forms_lead_only_to

    return forms_lead_only_to(response, None)
