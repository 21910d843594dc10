// A single-page app signing people in through op-proxy with oidc-client-ts (vendor/, no CDN):
// a public client (no secret) using the authorization code flow with PKCE (S256), renewing its
// access token in the background with the refresh token grant, and signing out at op-proxy.
/* global oidc */

const config = await (await fetch('/config.json')).json();

const userManager = new oidc.UserManager({
  authority: config.issuer,  // discovery: {issuer}/.well-known/openid-configuration
  client_id: config.client_id,
  redirect_uri: `${config.app_url}/callback`,  // registered for demo-spa, exactly
  post_logout_redirect_uri: `${config.app_url}/`,
  response_type: 'code',  // always with PKCE in oidc-client-ts
  scope: 'openid profile email',
  loadUserInfo: true,  // the access token's first use: op-proxy's userinfo (CORS allows this origin)
  // Renew shortly before the access token expires; with a refresh token (op-proxy gives one) that is
  // the refresh token grant, a fetch to the token endpoint: no hidden iframe, no third-party cookie.
  automaticSilentRenew: true,
  // Sign-out revokes the tokens at op-proxy before leaving for its end-session endpoint.
  revokeTokensOnSignout: true,
});

const $ = (id) => document.getElementById(id);
let renewals = 0;
let signedIn = false;

function show(user) {
  signedIn = Boolean(user && !user.expired);
  $('sign-in').hidden = signedIn;
  $('sign-out').hidden = !signedIn;
  if (!signedIn) {
    $('greeting').textContent = 'ตัวอย่างแอปหน้าเดียว / Single-page app example';
    $('status').textContent = 'ยังไม่ได้เข้าสู่ระบบ / Not signed in';
    $('email').textContent = $('renewals').textContent = '';
    return;
  }
  $('greeting').textContent = `สวัสดี ${user.profile.name}`;
  $('email').textContent = user.profile.email ?? '';
  $('status').textContent = `Access token valid until ${new Date(user.expires_at * 1000).toISOString()}`;
  $('renewals').textContent = `renewed ${renewals} time(s)`;
}

userManager.events.addUserLoaded((user) => {
  if (signedIn) renewals += 1;  // a silent renewal (the first load is the sign-in itself)
  show(user);
});
userManager.events.addSilentRenewError((error) => {
  $('status').textContent = `Renewal failed: ${error.message}`;
});
userManager.events.addUserSignedOut(() => show(null));

$('sign-in').addEventListener('click', () => userManager.signinRedirect());
$('sign-out').addEventListener('click', () => userManager.signoutRedirect());

try {
  if (location.pathname === '/callback') {
    // Checks state, exchanges the code with the PKCE verifier, reads the ID token and userinfo.
    await userManager.signinRedirectCallback();
    history.replaceState(null, '', '/');
  }
  show(await userManager.getUser());
} catch (error) {
  // e.g. access_denied when the person declined, or a stale /callback after a reload.
  show(null);
  $('status').textContent = `Sign-in failed: ${error.message}`;
}
