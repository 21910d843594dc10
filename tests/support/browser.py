"""Chromium, driven by Playwright, for the admin panel's stories: Debian's own chromium (never a
downloaded one), admins made with the CLI, and a screenshot of every step kept under
``test-artifacts/screenshots/``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, Page, Playwright, async_playwright, expect

from tests.support.admin import ADMIN_PASSWORD
from tests.support.server import ROOT, OpProxyServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}


async def launch(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A Chromium of its own, for a module's stories: closed, and Playwright stopped, when they are done."""
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        yield browser
        await browser.close()


class Camera:
    """Screenshots named ``<test name>-<nn>-<step>.png``, numbered in the order they were taken."""

    def __init__(self, test_name: str):
        self.test_name = re.sub(r"[^\w.-]+", "_", test_name)
        self.count = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob(f"{self.test_name}-*.png"):
            old.unlink()

    async def shot(self, page: Page, step: str, *, full_page: bool = True) -> None:
        """The page as the person sees it once animations (SweetAlert2's, Bootstrap's collapse) have ended;
        ``full_page=False`` for a popup over the page, whose backdrop only covers the viewport."""
        self.count += 1
        await page.screenshot(path=SCREENSHOTS / f"{self.test_name}-{self.count:02d}-{step}.png",
                              full_page=full_page, animations="disabled")


async def sign_in(page: Page, camera: Camera, username: str, password: str = ADMIN_PASSWORD) -> None:
    """Sign in at /admin/login as a person would: the labelled fields, the button."""
    await page.goto("/admin/login")
    await expect(page.get_by_role("heading", name="เข้าสู่ระบบผู้ดูแล")).to_be_visible()
    await page.get_by_label("ชื่อผู้ใช้").fill(username)
    await page.get_by_label("รหัสผ่าน", exact=True).fill(password)
    await camera.shot(page, "login")
    await page.get_by_role("button", name="เข้าสู่ระบบ", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/admin/$"))
    await expect(page.get_by_role("heading", name="แดชบอร์ด")).to_be_visible()
    await camera.shot(page, "dashboard")


def add_client(server: OpProxyServer, client_id: str, name: str,
               redirect_uri: str = "http://127.0.0.1:5400/callback") -> None:
    """``op-proxy clients add``: an application registered before the story starts."""
    result = subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), "clients",
                             "add", client_id, "--name", name, "--redirect-uri", redirect_uri],
                            text=True, capture_output=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
