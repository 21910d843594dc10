<?php
// config.php: where op-proxy is, the key it signs this app's tokens with, and this app's client_id.
// Set them in the environment (or edit the defaults); only the host name changes from sso-authen.

define('SSO_BASE', rtrim(getenv('SSO_BASE') ?: 'http://127.0.0.1:8080', '/'));
// The app's legacy key at op-proxy (its legacy_key_env, or [legacy] global_key_env), at least 32 characters.
// No default on purpose: without a key every token is refused.
define('JWT_SHARED_SECRET_KEY', getenv('JWT_SHARED_SECRET_KEY') ?: '');
define('CLIENT_ID', getenv('CLIENT_ID') ?: 'php-query-token');
// This app's own address, as registered at op-proxy (redirect_uris, post_logout_redirect_uris).
// Without APP_BASE it is taken from the request, which is fine behind a proxy that sets Host.
define('APP_BASE', rtrim(getenv('APP_BASE') ?: (
    ((!empty($_SERVER['HTTPS']) && $_SERVER['HTTPS'] !== 'off') ? 'https' : 'http') . '://'
    . ($_SERVER['HTTP_HOST'] ?? 'localhost') . rtrim(dirname($_SERVER['SCRIPT_NAME'] ?? '/'), '/\\')
), '/'));

function h($value): string
{
    return htmlspecialchars((string) $value, ENT_QUOTES, 'UTF-8');
}

function sso_login_url(): string
{
    return SSO_BASE . '/public/login.php?' . http_build_query([
        'client_id' => CLIENT_ID,
        'redirect_uri' => APP_BASE . '/sso_callback.php',
    ]);
}

function sso_logout_url(): string
{
    return SSO_BASE . '/public/logout.php?' . http_build_query([
        'post_logout_redirect_uri' => APP_BASE . '/',
    ]);
}
