<?php
// router.php: for `php -S` only. Plays the app's nginx of a real deployment, which redirects
// (nginx: location ^~ /sso-authen/ { return 302 https://sso.example.ac.th$request_uri; }):
// every /sso-authen/... request gets a 302 to op-proxy (SSO_BASE) with the same path and query.
// Everything else is served as usual.

$uri = $_SERVER['REQUEST_URI'];
$path = parse_url($uri, PHP_URL_PATH);
if ($path === '/sso-authen' || strncmp((string) $path, '/sso-authen/', 12) === 0) {
    $ssoBase = rtrim(getenv('SSO_BASE') ?: 'http://127.0.0.1:8080', '/');
    header('Location: ' . $ssoBase . $uri, true, 302);
    exit;
}
return false;
