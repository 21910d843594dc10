<?php
// protected_page.php: the sso-authen Auth Guard; logged-out people go to the SSO login link.
require __DIR__ . '/config.php';

if (!session_id()) {
    session_start();
}

// ตรวจสอบสถานะการล็อกอิน
if (!isset($_SESSION['user_is_logged_in']) || !$_SESSION['user_is_logged_in']) {
    header('Location: ' . sso_login_url());
    exit;
}

$currentUser = $_SESSION['user_info'];
echo "ยินดีต้อนรับ, " . htmlspecialchars($currentUser['name']);
