"""The ThaID example's Flask + Authlib app (seed ``ThaIDAuthenExample``), pointed at op-proxy.

The only changes from an app written for ThaID: the discovery URL, the client id and secret, and
the scopes; and one addition: the redirect URI is the registered one, whatever address the person
typed (op-proxy compares it exactly). Run it beside `make run` (see README.md for the environment):

    pip install -r requirements.txt
    flask --app app run --port 5000      # then open http://localhost:5000/
"""

import os
import secrets
from urllib.parse import urlencode, urlsplit

from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, render_template_string, request, session

OP_PROXY_ISSUER = os.environ.get("OP_PROXY_ISSUER", "http://127.0.0.1:8080")
# Both registered for client "demo" in op-proxy's conf/dev.toml, exactly as written here.
REDIRECT_URI = os.environ.get("REDIRECT_URI", "http://localhost:5000/auth")
POST_LOGOUT_REDIRECT_URI = os.environ.get("POST_LOGOUT_REDIRECT_URI", "http://127.0.0.1:5000/")

app = Flask(__name__)
app.secret_key = os.environ.get("FLASK_SECRET_KEY") or secrets.token_hex(32)
oauth = OAuth(app)
oauth.register(
    name="op_proxy",
    server_metadata_url=OP_PROXY_ISSUER + "/.well-known/openid-configuration",
    client_id=os.environ.get("CLIENT_ID", "demo"),
    client_secret=os.environ.get("CLIENT_SECRET", "demo-secret"),
    client_kwargs={"scope": "openid profile email org groups", "code_challenge_method": "S256"},
)

# The app's one address: the redirect URI's. The sign-in's state lives in this app's session cookie,
# which the browser keeps per host, so a sign-in must start on the host it comes back to.
APP_ORIGIN = "{0.scheme}://{0.netloc}".format(urlsplit(REDIRECT_URI))


@app.before_request
def stay_on_the_registered_host():
    """A person who reached http://127.0.0.1:5000/ (op-proxy's post-logout URI for "demo", or typed)
    continues at http://localhost:5000/, so that "Sign in" sends the registered redirect URI and
    comes back to the cookie that holds its state."""
    if request.host_url.rstrip("/") != APP_ORIGIN:
        return redirect(APP_ORIGIN + request.full_path.rstrip("?"))
    return None


HOME = """<!doctype html><html lang="th"><meta charset="utf-8"><title>Example app</title>
{% if user %}
  <h1>สวัสดี {{ user.name }}</h1>
  <p>{{ user.email }} · {{ user.department }}</p>
  <p><a href="{{ url_for('logout') }}">ออกจากระบบ / Sign out</a></p>
{% else %}
  <p><a href="{{ url_for('login') }}">เข้าสู่ระบบ / Sign in</a></p>
{% endif %}
</html>"""


@app.route("/")
def homepage():
    return render_template_string(HOME, user=session.get("user"))


@app.route("/login")
def login():
    # Never url_for(..., _external=True): that is the address the request came to, which op-proxy
    # refuses ("Invalid return address") unless it is exactly the registered one.
    return oauth.op_proxy.authorize_redirect(REDIRECT_URI)


@app.route("/auth")
def auth():
    token = oauth.op_proxy.authorize_access_token()  # verifies the ID token with op-proxy's JWKS
    session["user"] = token["userinfo"]
    session["id_token"] = token["id_token"]
    return redirect("/")


@app.route("/logout")
def logout():
    """Sign out here and at op-proxy (RP-initiated logout), then come back to the home page."""
    id_token = session.pop("id_token", None)
    session.pop("user", None)
    metadata = oauth.op_proxy.load_server_metadata()
    query = urlencode({"id_token_hint": id_token or "", "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI})
    return redirect(f"{metadata['end_session_endpoint']}?{query}")
