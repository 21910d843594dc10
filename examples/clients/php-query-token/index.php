<?php
require __DIR__ . '/config.php';
session_start();
$user = !empty($_SESSION['user_is_logged_in']) ? $_SESSION['user_info'] : null;
?>
<!doctype html>
<html lang="th">
<head><meta charset="utf-8"><title>แอป PHP (sso-authen)</title></head>
<body>
<?php if ($user === null): ?>
  <p><a href="<?= h(sso_login_url()) ?>">เข้าสู่ระบบ</a></p>
<?php else: ?>
  <h1>ยินดีต้อนรับ, <?= h($user['name'] ?? '') ?></h1>
  <p>อีเมล: <?= h($user['email'] ?? '-') ?></p>
  <p>บทบาท (role): <?= h($user['role'] ?? '-') ?></p>
  <p><a href="protected_page.php">หน้าสำหรับสมาชิก</a> · <a href="logout.php">ออกจากระบบ</a></p>
<?php endif; ?>
</body>
</html>
