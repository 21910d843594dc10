#!/usr/bin/env node
// A real upstream identity provider for the op-proxy test suite.
//
// Runs Node's OpenID-certified `oidc-provider` on 127.0.0.1 so the suite can send
// people to "ThaID", "PSU SSO (authentik)" or "Google" without the internet:
//
//   node upstream.mjs CONFIG.json
//     -> prints one line {"ready": true, "issuer": ISSUER, "port": PORT} on stdout
//        once listening, then runs until killed (SIGTERM/SIGINT).
//
// CONFIG.json (tests/support/upstream.py writes it; see its presets):
//   issuer           "http://127.0.0.1:PORT[/path]"  a path is a mount prefix
//                    (authentik: .../application/o/<slug>); discovery is at
//                    ISSUER/.well-known/openid-configuration. The issuer's host:port
//                    may differ from `port` (e.g. when a tampering proxy fronts us:
//                    every URL but the issuer is built from the request's Host).
//   port             where to listen (127.0.0.1)
//   jwks             private JWKS to sign with ({"keys": [...]}); optional for HS256
//   id_token_signing_alg  "ES256" | "RS256" | "PS256" | "HS256" (HS256 = HMAC with the
//                    client secret, as authentik without a signing key)
//   clients          [{client_id, client_secret, redirect_uris,
//                      token_endpoint_auth_method (default client_secret_basic),
//                      post_logout_redirect_uris}]
//   scopes           ["openid", ...]            claims {scope: [claim, ...]}
//   accounts         {accountId: {claim: value}}  accountId is the `sub`
//   iss_in_authorization_response (default true)  false: no RFC 9207 `iss` in the
//                    redirect to the client (success or error) and
//                    authorization_response_iss_parameter_supported left out of discovery
//   pkce_required    (default false) PKCE S256 required for every client
//   refresh_tokens   false | true | "offline_access" (default false): true issues one
//                    with every code exchange, "offline_access" only when that scope
//                    is granted (oidc-provider's default; needs prompt=consent)
//   end_session      (default true) RP-initiated logout
//   claims_in_id_token (default false) put the scope claims in the ID token as well
//                    (conformIdTokenClaims: false), as ThaID and authentik do
//   introspection, revocation (default true)
//   token_response_expire_in (default false) add ThaID's `expire_in` (sic: an absolute
//                    Unix time) to token responses
//   routes           optional oidc-provider route overrides, e.g. {"authorization": "/auth/"}
//   ttl              optional oidc-provider ttl overrides in seconds, e.g. {"AccessToken": 900}
//
// The person signs in through oidc-provider's development interactions:
//   GET  ISSUER/interaction/<uid>  login page: <form action=".../interaction/<uid>" method=post>
//        with inputs prompt=login (hidden), login, password; any password works but
//        `login` must be a key of `accounts` (otherwise 303 back to the login page,
//        which then says "unknown account").
//   the same URL then shows the consent page: a form with prompt=consent (hidden)
//        and a submit button; POST it as is.
//   logout (end_session): GET ISSUER/session/end?... shows a page whose form
//        id="op.logoutForm" posts xsrf (hidden) to .../session/end/confirm; add
//        logout=yes (the button sits outside the form) to sign out.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

// stdout carries only the ready line: oidc-provider's notices (console.info) go to stderr.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

function die(message) {
  process.stderr.write(`upstream.mjs: ${message}\n`);
  process.exit(2);
}

if (process.argv.length !== 3) die('usage: node upstream.mjs CONFIG.json');

let cfg;
try {
  cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
} catch (err) {
  die(`cannot read ${process.argv[2]}: ${err.message}`);
}

for (const name of ['issuer', 'port', 'clients', 'accounts']) {
  if (cfg[name] === undefined) die(`config needs "${name}"`);
}

const issuerUrl = new URL(cfg.issuer);
const prefix = issuerUrl.pathname.replace(/\/+$/, ''); // '' or '/application/o/psu'
const alg = cfg.id_token_signing_alg ?? 'RS256';
const accounts = cfg.accounts;
const issInResponse = cfg.iss_in_authorization_response ?? true;
const refreshTokens = cfg.refresh_tokens ?? false;
const option = (name, fallback) => (cfg[name] === undefined ? fallback : Boolean(cfg[name]));

// scope -> claim names; the defaults (acr/sid/auth_time/iss, openid -> sub) stay.
const claims = { acr: null, sid: null, auth_time: null, iss: null, openid: ['sub'] };
for (const [scope, names] of Object.entries(cfg.claims ?? {})) {
  claims[scope] = scope === 'openid' ? ['sub', ...names.filter((n) => n !== 'sub')] : names;
}
const scopes = [...new Set(['openid', ...(cfg.scopes ?? []), ...(refreshTokens ? ['offline_access'] : [])])];

const clients = cfg.clients.map((c) => {
  const client = {
    client_id: c.client_id,
    redirect_uris: c.redirect_uris,
    response_types: ['code'],
    grant_types: refreshTokens ? ['authorization_code', 'refresh_token'] : ['authorization_code'],
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
    id_token_signed_response_alg: c.id_token_signed_response_alg ?? alg,
  };
  if (c.client_secret !== undefined) client.client_secret = c.client_secret;
  if (c.post_logout_redirect_uris) client.post_logout_redirect_uris = c.post_logout_redirect_uris;
  return client;
});
const authMethods = [...new Set(clients.map((c) => c.token_endpoint_auth_method))];

async function findAccount(_ctx, accountId) {
  if (!Object.hasOwn(accounts, accountId)) return undefined;
  return {
    accountId,
    // oidc-provider filters these down to what the granted scopes/claims allow.
    async claims(_use, _scope, _claims, _rejected) {
      return { ...accounts[accountId], sub: accountId };
    },
  };
}

const configuration = {
  clients,
  clientAuthMethods: authMethods,
  claims,
  scopes,
  findAccount,
  conformIdTokenClaims: !option('claims_in_id_token', false),
  pkce: { required: () => option('pkce_required', false) },
  responseTypes: ['code'],
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: option('end_session', true) },
    introspection: { enabled: option('introspection', true) },
    revocation: { enabled: option('revocation', true) },
  },
  enabledJWA: {
    // only what the clients use, so discovery advertises e.g. ES256 alone for ThaID
    idTokenSigningAlgValues: [...new Set(clients.map((c) => c.id_token_signed_response_alg))],
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ...(cfg.routes ? { routes: cfg.routes } : {}),
  ...(cfg.ttl ? { ttl: cfg.ttl } : {}),
};
if (cfg.jwks?.keys?.length) configuration.jwks = cfg.jwks;
if (refreshTokens) {
  // With refresh tokens off, neither offline_access nor refresh_token is advertised.
  configuration.issueRefreshToken = async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (refreshTokens === 'offline_access' ? code.scopes.has('offline_access') : true);
}

const provider = new Provider(cfg.issuer, configuration);

// --- RFC 9207 `iss` in authorization responses -------------------------------------
// oidc-provider v9 has no switch for it: respond.js sets `out.iss` for every
// successful authorization response (unless it carries an id_token or is JARM), the
// authorization error handler adds it to error redirects too, and discovery always
// says authorization_response_iss_parameter_supported: true. So: drop it from the
// success payload through the 'authorization.success' event (emitted with the very
// object later handed to the response mode), strip it from error redirects /
// form_post pages below, and delete the discovery flag.
if (!issInResponse) {
  provider.on('authorization.success', (_ctx, out) => { delete out.iss; });
}

function stripIssFromLocation(location) {
  const url = new URL(location);
  url.searchParams.delete('iss');
  if (url.hash) {
    const fragment = new URLSearchParams(url.hash.slice(1));
    fragment.delete('iss');
    url.hash = fragment.toString();
  }
  return url.href;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

provider.use(async (ctx, next) => {
  // Only listed accounts may sign in on the dev login form (any password).
  const interaction = /^\/interaction\/[^/]+$/.exec(ctx.path);
  if (interaction && ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
    const form = await readForm(ctx.req);
    ctx.req.body = form; // oidc-provider's body parser falls back to req.body
    if (form.prompt === 'login' && !Object.hasOwn(accounts, String(form.login ?? ''))) {
      ctx.status = 303;
      ctx.redirect(`${(ctx.req.originalUrl ?? ctx.url).split('?')[0]}?error=unknown_account`);
      return;
    }
  }

  await next();

  if (interaction && ctx.method === 'GET' && ctx.query.error === 'unknown_account' && typeof ctx.body === 'string') {
    ctx.body = ctx.body.replace('<form', '<p class="error" role="alert">unknown account</p>\n<form');
  }

  if (!issInResponse) {
    if (ctx.path === '/.well-known/openid-configuration' && ctx.body && typeof ctx.body === 'object') {
      delete ctx.body.authorization_response_iss_parameter_supported;
    }
    const location = ctx.response.get('Location');
    if (location && ctx.status >= 300 && ctx.status < 400 && /[?#&]iss=/.test(location)) {
      ctx.set('Location', stripIssFromLocation(location));
    }
    if (typeof ctx.body === 'string' && ctx.body.includes('<title>Submitting Callback</title>')) {
      ctx.body = ctx.body.replace(/<input type="hidden" name="iss" value="[^"]*"\/>\n?/, '');
    }
  }

  // ThaID's token response carries `expire_in` (sic), an absolute Unix time.
  if (cfg.token_response_expire_in && ctx.method === 'POST' && ctx.body && typeof ctx.body === 'object'
      && typeof ctx.body.expires_in === 'number' && ctx.body.access_token) {
    ctx.body.expire_in = Math.floor(Date.now() / 1000) + ctx.body.expires_in;
  }
});

for (const event of ['server_error', 'grant.error', 'authorization.error', 'end_session.error',
  'userinfo.error', 'introspection.error', 'revocation.error']) {
  provider.on(event, (_ctx, err) => {
    process.stderr.write(`upstream.mjs ${event}: ${err?.error ?? err?.name}: ${err?.error_description ?? err?.message}\n`);
  });
}

// --- HTTP: mount the provider under the issuer's path ------------------------------
// oidc-provider routes on req.url and builds its URLs from the mount path it finds in
// req.originalUrl / req.baseUrl (the express convention), so strip the prefix here.
const callback = provider.callback();
const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (prefix) {
    const path = url.split('?')[0];
    if (path !== prefix && !path.startsWith(`${prefix}/`)) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: 'not_found', error_description: `outside ${prefix}` }));
      return;
    }
    req.originalUrl = url;
    req.baseUrl = prefix;
    req.url = url.slice(prefix.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
  }
  callback(req, res);
});

server.listen(Number(cfg.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, issuer: provider.issuer, port: server.address().port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
