"""Signing keys: each key's state and the rotation schedule, the published JWKS, and two audited
actions: rotate (publish now, sign after ``keys.publish_ahead``) and retire now (an emergency switch)."""

from __future__ import annotations

import asyncio
import json
import time

from quart import redirect, request

from admin import formatting
from admin.auth import admin_page, record_admin_action
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.services import services
from op_proxy.web import render_page

STATUS_LABELS = {"next": N_("next"), "signing": N_("signing"), "retired": N_("retired")}
DONE_MESSAGES = {
    "rotated": N_("New key %(kid)s published; it signs from %(time)s."),
    "retired": N_("New key %(kid)s signs now; the old key stays published until its tokens expire."),
}


def attach(bp) -> None:
    formatting.register_labels(bp, "key_status_label", STATUS_LABELS)

    @bp.route("/keys")
    @admin_page()
    async def keys_list():
        keyring = services().keyring
        states = await asyncio.to_thread(lambda: list(reversed(keyring.states())))
        jwks = await asyncio.to_thread(keyring.jwks)
        upcoming = [s for s in states if s.status == "next"]
        retired = [s for s in states if s.status == "retired" and s.published_until]
        done, kid = request.args.get("done"), request.args.get("kid", "")
        key = next((s.key for s in states if s.key.kid == kid), None)
        message = _(DONE_MESSAGES[done], kid=kid, time=formatting.when(key.signs_from)) \
            if done in DONE_MESSAGES and key else None
        return await render_page("admin/keys.html", states=states, now=int(time.time()),
                                 next_signs_at=min((s.key.signs_from for s in upcoming), default=None),
                                 retired_until=max((s.published_until for s in retired), default=None),
                                 jwks=json.dumps(jwks, indent=2), algorithm=keyring.algorithm,
                                 publish_ahead=keyring.publish_ahead, max_token_lifetime=keyring.max_token_lifetime,
                                 message=message)

    @bp.route("/keys/rotate", methods=["POST"])
    @admin_page()
    async def keys_rotate():
        keyring = services().keyring
        key = await asyncio.to_thread(keyring.rotate, immediately=False)
        await record_admin_action("signing_key_rotated", kid=key.kid, signs_from=key.signs_from)
        return redirect(f"/admin/keys?done=rotated&kid={key.kid}", 303)

    @bp.route("/keys/retire", methods=["POST"])
    @admin_page()
    async def keys_retire():
        keyring = services().keyring
        retiring = await asyncio.to_thread(lambda: keyring.signing_key().kid)
        # The key already published as "next" takes over; a new one only when none is waiting.
        key = await asyncio.to_thread(keyring.promote_next) or await asyncio.to_thread(keyring.rotate, immediately=True)
        await record_admin_action("signing_key_retired_now", kid=key.kid, retired_kid=retiring)
        return redirect(f"/admin/keys?done=retired&kid={key.kid}", 303)
