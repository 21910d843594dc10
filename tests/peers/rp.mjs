#!/usr/bin/env node
// Relying-party driver for the op-proxy test suite.
//
// Runs an OIDC authorization-code + PKCE (S256) flow against an OpenID Provider
// with the OpenID-certified `openid-client` library, so pytest can check that a
// real, strict RP accepts our provider. pytest calls it as a subprocess, in two
// steps, and does the browser part (login / consent / redirect) in between:
//
//   node rp.mjs start  --issuer URL --client-id ID [--client-secret S]
//                      [--auth-method client_secret_basic|client_secret_post|none]
//                      --redirect-uri URI [--scope "openid profile email"]
//                      [--extra key=value ...]
//     -> {"authorization_url", "code_verifier", "state", "nonce"}
//
//   node rp.mjs finish --issuer URL --client-id ID [--client-secret S]
//                      [--auth-method ...] --redirect-uri URI
//                      --callback-url FULL_CALLBACK_URL
//                      --code-verifier V --state S --nonce N
//     -> {"id_token_claims", "access_token", "refresh_token", "userinfo",
//         "refreshed": {"id_token_claims", "access_token", "refresh_token"} | null}
//
// Each prints one JSON object on stdout and exits 0; on any failure it prints
// {"error", "error_description"} and exits 1.
//
// Plain http is allowed (client.allowInsecureRequests) because the suite serves
// the provider on http://127.0.0.1. ID token signatures are verified against the
// provider's JWKS (client.enableNonRepudiationChecks); the RFC 9207 `iss`
// response parameter is required when the discovery document says
// `authorization_response_iss_parameter_supported: true`.

import * as client from 'openid-client';

const USAGE = 'usage: node rp.mjs start|finish --issuer URL --client-id ID ...';

function fail(error, description) {
  process.stdout.write(JSON.stringify({ error, error_description: description }) + '\n');
  process.exit(1);
}

function required(values, ...names) {
  for (const name of names) {
    if (!values[name]) fail('usage', `missing --${name}; ${USAGE}`);
  }
}

function clientAuth(method, secret) {
  switch (method ?? (secret ? 'client_secret_basic' : 'none')) {
    case 'client_secret_basic':
      if (!secret) fail('usage', 'client_secret_basic needs --client-secret');
      return client.ClientSecretBasic(secret);
    case 'client_secret_post':
      if (!secret) fail('usage', 'client_secret_post needs --client-secret');
      return client.ClientSecretPost(secret);
    case 'none':
      return client.None();
    default:
      fail('usage', `unsupported --auth-method ${method}`);
  }
}

async function configure(v) {
  required(v, 'issuer', 'client-id', 'redirect-uri');
  return client.discovery(
    new URL(v.issuer),
    v['client-id'],
    undefined,
    clientAuth(v['auth-method'], v['client-secret']),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  );
}

async function start(v) {
  const config = await configure(v);
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: v['redirect-uri'],
    scope: v.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  for (const kv of v.extra) {
    const i = kv.indexOf('=');
    if (i < 1) fail('usage', `--extra expects key=value, got ${JSON.stringify(kv)}`);
    params[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const url = client.buildAuthorizationUrl(config, params);
  return { authorization_url: url.href, code_verifier: codeVerifier, state, nonce };
}

function tokenSummary(tokens) {
  return {
    id_token_claims: tokens.claims() ?? null,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token ?? null,
  };
}

async function finish(v) {
  required(v, 'callback-url', 'code-verifier', 'state', 'nonce');
  const config = await configure(v);
  const callback = new URL(v['callback-url']);
  // openid-client takes the token request's redirect_uri from the callback URL.
  if (callback.origin + callback.pathname !== new URL(v['redirect-uri']).href) {
    fail('redirect_uri_mismatch', `callback ${callback.href} is not at ${v['redirect-uri']}`);
  }
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: v['code-verifier'],
    expectedState: v.state,
    expectedNonce: v.nonce,
    idTokenExpected: true,
  });
  const result = tokenSummary(tokens);
  result.userinfo = await client.fetchUserInfo(config, tokens.access_token, result.id_token_claims.sub);
  result.refreshed = tokens.refresh_token
    ? tokenSummary(await client.refreshTokenGrant(config, tokens.refresh_token))
    : null;
  return result;
}

// All options take a value, given as `--name value` or `--name=value`. The value
// is always the next argument, even if it starts with "-" (base64url states,
// nonces and verifiers can), which node:util parseArgs would reject.
const OPTIONS = new Set(['issuer', 'client-id', 'client-secret', 'auth-method', 'redirect-uri',
  'scope', 'extra', 'callback-url', 'code-verifier', 'state', 'nonce']);

function parseArgv(argv) {
  const values = { scope: 'openid', extra: [] };
  const positionals = [];
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) {
      positionals.push(argv[i]);
      continue;
    }
    const eq = argv[i].indexOf('=');
    const name = eq === -1 ? argv[i].slice(2) : argv[i].slice(2, eq);
    if (!OPTIONS.has(name)) fail('usage', `unknown option --${name}; ${USAGE}`);
    if (eq === -1 && i + 1 >= argv.length) fail('usage', `--${name} needs a value`);
    const value = eq === -1 ? argv[++i] : argv[i].slice(eq + 1);
    if (name === 'extra') values.extra.push(value);
    else values[name] = value;
  }
  return { values, positionals };
}

async function main() {
  const { values, positionals } = parseArgv(process.argv.slice(2));
  const command = { start, finish }[positionals[0]];
  if (!command || positionals.length !== 1) fail('usage', USAGE);
  process.stdout.write(JSON.stringify(await command(values)) + '\n');
}

main().catch((err) => {
  // openid-client errors: AuthorizationResponseError / ResponseBodyError carry
  // the OAuth `error` / `error_description`; others have a `code` (e.g.
  // OAUTH_JWT_CLAIM_COMPARISON_FAILED) and a message, sometimes a cause.
  const cause = err?.cause instanceof Error ? ` (cause: ${err.cause.message})` : '';
  fail(err?.error ?? err?.code ?? err?.name ?? 'error', (err?.error_description ?? err?.message ?? String(err)) + cause);
});
