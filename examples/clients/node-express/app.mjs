// An Express app that signs people in through op-proxy with openid-client 6 (OpenID certified):
// authorization code + PKCE (S256), the RFC 9207 `iss` response parameter checked, the ID token
// verified, the access token refreshed with the refresh token, and sign-out at op-proxy
// (RP-initiated logout) that comes back here.
//
//   npm ci && npm start        # then open http://127.0.0.1:5000/ (beside `make run`)
//
// Every setting has a default that matches client `demo` in op-proxy's conf/dev.toml.

import crypto from 'node:crypto';

import express from 'express';
import session from 'express-session';
import * as client from 'openid-client';

const ISSUER = process.env.OP_PROXY_ISSUER ?? 'http://127.0.0.1:8080';
const CLIENT_ID = process.env.CLIENT_ID ?? 'demo';
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? 'demo-secret';
const PORT = Number(process.env.PORT ?? 5000);
// Where people reach this app: the redirect URI and the post-logout URI registered at op-proxy
// are built from it, exactly as registered (http://127.0.0.1:5000/callback and http://127.0.0.1:5000/).
const APP_URL = process.env.APP_URL ?? `http://127.0.0.1:${PORT}`;
const REDIRECT_URI = `${APP_URL}/callback`;
const POST_LOGOUT_REDIRECT_URI = `${APP_URL}/`;
const SCOPE = 'openid profile email';

// openid-client refuses plain http unless told otherwise. Only a development issuer on loopback
// (http://127.0.0.1:8080) may be reached that way: a real op-proxy is https, and this stays off.
const insecureOnLoopback = /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(ISSUER)
  ? [client.allowInsecureRequests] : [];

// Discovery once at start-up: endpoints, the JWKS and `authorization_response_iss_parameter_supported`,
// which makes openid-client require and check the `iss` parameter of every authorization response.
const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined,
  client.ClientSecretBasic(CLIENT_SECRET), { execute: insecureOnLoopback });

const app = express();

// The app's one address, APP_URL's: the sign-in's state lives in the session cookie, which the
// browser keeps per host, so a person who typed http://localhost:5000/ continues at APP_URL.
app.use((req, res, next) => {
  if (`${req.protocol}://${req.get('host')}` === APP_URL) return next();
  res.redirect(new URL(req.originalUrl, APP_URL).href);
});
app.use(session({
  secret: process.env.SESSION_SECRET ?? crypto.randomBytes(32).toString('hex'),
  resave: false,
  saveUninitialized: false,
  // Lax: the cookie comes back on op-proxy's redirect to /callback but not on another site's POST.
  cookie: { httpOnly: true, sameSite: 'lax', secure: APP_URL.startsWith('https:') },
}));

const escape = (text) => String(text ?? '').replace(/[&<>"']/g,
  (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(body, status = 200) {
  return [status, `<!doctype html><html lang="th"><meta charset="utf-8"><title>Express example</title>${body}</html>`];
}

function remember(req, tokens) {
  const claims = tokens.claims();  // the verified ID token's claims (a refresh brings a new one)
  req.session.user = { sub: claims.sub, name: claims.name, email: claims.email };
  req.session.idToken = tokens.id_token;
  req.session.accessToken = tokens.access_token;
  req.session.refreshToken = tokens.refresh_token;  // op-proxy rotates it on every use
  req.session.expiresAt = Date.now() + (tokens.expiresIn() ?? 0) * 1000;
}

app.get('/', (req, res) => {
  const { user } = req.session;
  const [status, html] = user
    ? page(`<h1>สวัสดี ${escape(user.name)}</h1><p>${escape(user.email)}</p>
<p>Access token valid until ${new Date(req.session.expiresAt).toISOString()};
refreshed ${req.session.refreshes ?? 0} time(s).</p>
<form method="post" action="/refresh"><button>ต่ออายุโทเค็น / Refresh</button></form>
<form method="post" action="/logout"><button>ออกจากระบบ / Sign out</button></form>`)
    : page('<p><a href="/login">เข้าสู่ระบบ / Sign in</a></p>');
  res.status(status).send(html);
});

app.get('/login', async (req, res) => {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  req.session.pending = { codeVerifier, state, nonce };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: SCOPE, state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  res.redirect(url.href);
});

app.get('/callback', async (req, res) => {
  const pending = req.session.pending;
  delete req.session.pending;
  if (!pending) {
    const [status, html] = page('<p>This sign-in has expired. <a href="/login">Sign in again</a></p>', 400);
    return res.status(status).send(html);
  }
  try {
    // Checks state, iss (RFC 9207), the code's exchange with the PKCE verifier, then the ID token
    // (signature with op-proxy's JWKS, iss, aud, exp, nonce).
    const tokens = await client.authorizationCodeGrant(config, new URL(req.originalUrl, APP_URL), {
      pkceCodeVerifier: pending.codeVerifier, expectedState: pending.state, expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    remember(req, tokens);
    req.session.refreshes = 0;
    res.redirect('/');
  } catch (error) {
    // e.g. access_denied when the person declined, or a response that failed a check.
    console.error('sign-in failed:', error.code ?? error.name, error.error ?? '');
    const [status, html] = page(`<p>Sign-in failed (${escape(error.error ?? error.code)}).
<a href="/login">Try again</a></p>`, 400);
    res.status(status).send(html);
  }
});

app.post('/refresh', async (req, res) => {
  if (!req.session.refreshToken) return res.redirect('/');
  try {
    remember(req, await client.refreshTokenGrant(config, req.session.refreshToken));
    req.session.refreshes = (req.session.refreshes ?? 0) + 1;
    res.redirect('/');
  } catch (error) {
    // The grant ended (revoked, expired, signed out elsewhere): this session ends too.
    console.error('refresh failed:', error.code ?? error.name, error.error ?? '');
    req.session.destroy(() => res.redirect('/'));
  }
});

app.post('/logout', (req, res) => {
  const idTokenHint = req.session.idToken;
  req.session.destroy(() => {
    if (!idTokenHint) return res.redirect('/');
    // op-proxy ends its session and sends the browser back to the registered post-logout URI.
    res.redirect(client.buildEndSessionUrl(config, {
      id_token_hint: idTokenHint, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
    }).href);
  });
});

app.listen(PORT, '127.0.0.1', () => console.log(`Example app at ${APP_URL}/`));
