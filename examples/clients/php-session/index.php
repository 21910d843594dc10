<?php
// index.php: a start page with the old gateway's links (same host: /sso-authen/ is op-proxy).
$here = ((!empty($_SERVER['HTTPS']) && $_SERVER['HTTPS'] !== 'off') ? 'https' : 'http') . '://' . $_SERVER['HTTP_HOST'] . '/';
$logout = '/sso-authen/public/logout.php?' . http_build_query(['post_logout_redirect_uri' => $here]);
?>
<!doctype html>
<html lang="th">
<head><meta charset="utf-8"><title>แอป PHP (PHP session)</title></head>
<body>
  <p><a href="protected_page.php">เข้าสู่ระบบ / หน้าสำหรับสมาชิก</a></p>
  <p><a href="<?= htmlspecialchars($logout, ENT_QUOTES, 'UTF-8') ?>">ออกจากระบบ</a></p>
</body>
</html>
