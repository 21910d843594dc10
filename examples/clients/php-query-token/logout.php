<?php
// logout.php: end this app's session, then op-proxy's (which sends the person back to index.php).
require __DIR__ . '/config.php';

session_start();
$_SESSION = [];
$cookie = session_get_cookie_params();
setcookie(session_name(), '', time() - 3600, $cookie['path'], $cookie['domain'], $cookie['secure'], $cookie['httponly']);
session_destroy();

header('Location: ' . sso_logout_url());
exit;
