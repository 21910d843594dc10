#!/usr/bin/env node
// Node's OpenID-certified `oidc-provider` configured like op-proxy's dev config, for `make bench`.
//
//   node bench/provider.mjs PORT
//     -> prints {"ready": true, "issuer": ...} on stdout once listening; runs until SIGTERM/SIGINT.
//
// The same client as conf/dev.toml's "demo" (client_secret_basic, secret "demo-secret", redirect
// http://127.0.0.1:5000/callback); authorization codes and rotating refresh tokens (each used once,
// as op-proxy's); introspection and userinfo on; the person signs in on oidc-provider's development
// login form (any password, so no password hash: the bench compares sign-ins without op-proxy's
// password hash). Consent is not asked (the grant is made at once), as op-proxy's demo client does
// not ask for it. Access tokens are oidc-provider's default (opaque).

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

const { default: Provider } = await import(new URL('../tests/peers/node_modules/oidc-provider/lib/index.js',
  import.meta.url));

console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const port = Number(process.argv[2]);
if (!port) {
  process.stderr.write('usage: node bench/provider.mjs PORT\n');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const person = {
  name: 'Bench Person', given_name: 'Bench', family_name: 'Person', email: 'bench@example.ac.th',
  email_verified: true, preferred_username: 'bench',
};

// oidc-provider's quick-start memory adapter is an LRU of 1,000 entries: a bench's thousands of codes
// and tokens would evict the session, the grant and the very tokens being measured. The same adapter
// without the bound (a bench run is short; nothing expires while it lasts).
const storage = new Map();
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);

class MemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async destroy(id) { storage.delete(this.key(id)); }

  async consume(id) {
    const found = storage.get(this.key(id));
    if (found) found.consumed = Math.floor(Date.now() / 1000);
  }

  async find(id) { return storage.get(this.key(id)); }

  async findByUid(uid) {
    const id = storage.get(`sessionUid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = storage.get(`userCode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async upsert(id, payload) {
    const key = this.key(id);
    if (this.model === 'Session') storage.set(`sessionUid:${payload.uid}`, id);
    const { grantId, userCode } = payload;
    if (grantable.has(this.model) && grantId) {
      const grantKey = `grant:${grantId}`;
      const keys = storage.get(grantKey);
      if (keys) keys.push(key); else storage.set(grantKey, [key]);
    }
    if (userCode) storage.set(`userCode:${userCode}`, id);
    storage.set(key, payload);
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of storage.get(grantKey) ?? []) storage.delete(key);
    storage.delete(grantKey);
  }
}

const configuration = {
  adapter: MemoryAdapter,
  clients: [{
    client_id: 'demo',
    client_secret: 'demo-secret',
    redirect_uris: ['http://127.0.0.1:5000/callback'],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'] },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  async findAccount(_ctx, accountId) {
    return { accountId, async claims() { return { sub: accountId, ...person }; } };
  },
  pkce: { required: () => false },
  responseTypes: ['code'],
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  // No consent screen: the grant is made on the first sign-in (a first-party application).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email offline_access');
    await grant.save();
    return grant;
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: { AuthorizationCode: 600, AccessToken: 900, IdToken: 3600, RefreshToken: 30 * 86400,
    Interaction: 900, Session: 8 * 3600, Grant: 30 * 86400 },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, err) => process.stderr.write(`provider.mjs server_error: ${err?.message}\n`));

const server = createServer(provider.callback());
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
