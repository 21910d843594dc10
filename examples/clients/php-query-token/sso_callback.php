<?php
// sso_callback.php: the sso-authen callback, verifying the HS256 JWT itself (no Composer needed).
require __DIR__ . '/config.php';

// Seconds of clock difference tolerated between op-proxy and this server (firebase/php-jwt's
// JWT::$leeway, 0 there by default). op-proxy dates nbf a minute back for servers that tolerate none.
define('CLOCK_LEEWAY', (int) (getenv('JWT_LEEWAY') !== false ? getenv('JWT_LEEWAY') : 60));

session_start();
header('Referrer-Policy: no-referrer');
$jwt = $_GET['token'] ?? null;

function fail(string $reason)
{
    http_response_code(401);
    header('Content-Type: text/plain; charset=utf-8');
    die('Authentication Failed: ' . $reason);
}

function base64url_decode(string $part)
{
    if (!preg_match('/^[A-Za-z0-9_-]*$/', $part)) {
        return false;
    }
    return base64_decode(strtr($part, '-_', '+/') . str_repeat('=', (4 - strlen($part) % 4) % 4), true);
}

/** The token's claims, or fail() with the reason it is not acceptable. */
function verify_token($jwt): object
{
    if (JWT_SHARED_SECRET_KEY === '') {
        fail('no shared key configured (JWT_SHARED_SECRET_KEY)');
    }
    if (!is_string($jwt) || $jwt === '') {
        fail('no token');
    }
    $parts = explode('.', $jwt);
    if (count($parts) !== 3) {
        fail('Wrong number of segments');
    }
    [$h, $p, $s] = $parts;
    $header = json_decode((string) base64url_decode($h));
    $payload = json_decode((string) base64url_decode($p));
    $signature = base64url_decode($s);
    if (!is_object($header) || !is_object($payload) || $signature === false) {
        fail('Malformed token');
    }
    if (($header->alg ?? null) !== 'HS256') {
        fail('Algorithm not allowed');
    }
    if (!hash_equals(hash_hmac('sha256', "$h.$p", JWT_SHARED_SECRET_KEY, true), $signature)) {
        fail('Signature verification failed');
    }
    $now = time();
    if (!is_numeric($payload->exp ?? null) || $now - CLOCK_LEEWAY >= $payload->exp) {
        fail('Expired token');
    }
    if (isset($payload->nbf) && (!is_numeric($payload->nbf) || $payload->nbf > $now + CLOCK_LEEWAY)) {
        fail('Token not yet valid (nbf)');
    }
    // As firebase/php-jwt: iat says when, nbf says from when; iat is judged only without an nbf.
    if (!isset($payload->nbf) && isset($payload->iat)
        && (!is_numeric($payload->iat) || $payload->iat > $now + CLOCK_LEEWAY)) {
        fail('Token issued in the future (iat)');
    }
    $aud = $payload->aud ?? null;
    if (!($aud === CLIENT_ID || (is_array($aud) && in_array(CLIENT_ID, $aud, true)))) {
        fail('Wrong audience');
    }
    if (!isset($payload->data) || !is_object($payload->data)) {
        fail('No user data in token');
    }
    return $payload;
}

$decoded = verify_token($jwt);
$userInfo = (array) $decoded->data;

// สร้าง Session ของตัวเอง (a new session id: nobody can plant one on the person beforehand)
session_regenerate_id(true);
$_SESSION['user_is_logged_in'] = true;
$_SESSION['user_info'] = $userInfo;

header('Location: index.php');
exit;
