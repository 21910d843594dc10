<?php
// router.php: for `php -S` only. Plays the same-host reverse proxy of a real deployment
// (nginx: location /sso-authen/ { proxy_pass http://op-proxy; }) by sending every /sso-authen/...
// request on to op-proxy (SSO_BASE) with the same path and query. Everything else is served as usual.

$uri = $_SERVER['REQUEST_URI'];
$path = parse_url($uri, PHP_URL_PATH);
if ($path === '/sso-authen' || strncmp((string) $path, '/sso-authen/', 12) === 0) {
    $ssoBase = rtrim(getenv('SSO_BASE') ?: 'http://127.0.0.1:8080', '/');
    header('Location: ' . $ssoBase . $uri, true, 302);
    exit;
}
return false;
