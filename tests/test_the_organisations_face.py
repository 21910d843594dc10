"""A student of a university signs in, is refused, signs out: every page wears the university's name,
logo and colour, speaks Thai and English, reads well on a phone (390 px) and a desktop (1280 px), and
passes WCAG AA contrast. Every page is kept as a screenshot under
``test-artifacts/screenshots/<test name>-<nn>-<step>.png``.
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import urlencode

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from op_proxy.branding import contrast_with_white
from op_proxy.config import ConfigError, load_settings
from tests.support.admin import create_admin
from tests.support.browser import PHONE, Camera, chromium, sign_in
from tests.support.contrast import passes_contrast
from tests.support.server import free_port, write_config

LOGO = """<svg xmlns="http://www.w3.org/2000/svg" width="96" height="48" viewBox="0 0 96 48">
<rect width="96" height="48" rx="8" fill="#003c71"/><text x="48" y="31" font-size="18" fill="#fff"
text-anchor="middle" font-family="sans-serif">PSU</text></svg>"""

BRANDING = """
[branding]
name_th = "มหาวิทยาลัยสงขลานครินทร์"
name_en = "Prince of Songkla University"
logo = "psu-logo.svg"
primary_color = "#003c71"
support_email = "helpdesk@psu.ac.th"
support_phone = "074 282 000"
support_url = "https://help.psu.ac.th/"
"""

# An upstream whose discovery nobody answers: the page a person sees when the university's SSO is down.
BROKEN_UPSTREAM = """
[upstreams.campus]
kind = "oidc"
issuer = "http://127.0.0.1:{port}"
client_id = "op-proxy"
client_secret_env = "CAMPUS_SECRET"
display_name = {{ th = "PSU Passport", en = "PSU Passport" }}
timeout = 2
"""

APP = "http://127.0.0.1:5003"
CONSENTING_APP = {"client_id": "consenting-app", "name": "ระบบทะเบียนนักศึกษา", "require_consent": True,
                  "token_endpoint_auth_method": "none", "redirect_uris": [APP + "/callback"],
                  "post_logout_redirect_uris": [APP + "/"]}


@pytest.fixture(scope="module")
async def browser():
    async with chromium() as started:
        yield started


@pytest.fixture
def university(make_server):
    """op-proxy dressed as the university, with its local accounts and its (unreachable) campus SSO."""
    directory = make_server.directory
    (directory / "psu-logo.svg").write_text(LOGO, encoding="utf-8")
    extra = BRANDING + BROKEN_UPSTREAM.format(port=free_port())
    return make_server(clients=[CONSENTING_APP], extra=extra, env={"CAMPUS_SECRET": "campus-secret"})


async def sees(page: Page, camera: Camera, step: str) -> None:
    await page.wait_for_load_state()
    await camera.shot(page, step)
    await passes_contrast(page)


LANGUAGES = {
    "th": {"locale": "th-TH", "university": "มหาวิทยาลัยสงขลานครินทร์", "sign_in": "เข้าสู่ระบบ",
           "asks": "เพื่อเข้าใช้ ระบบทะเบียนนักศึกษา", "show": "แสดง", "hide": "ซ่อน", "allow": "อนุญาต",
           "back": "กลับไปที่ ระบบทะเบียนนักศึกษา", "reference": "รหัสอ้างอิง", "cancel": "ยกเลิก",
           "sign_out": "ออกจากระบบ", "try_again": "ลองอีกครั้ง", "continue": "ดำเนินการต่อ",
           "another_way": "เลือกวิธีเข้าสู่ระบบอื่น"},
    "en": {"locale": "en-US", "university": "Prince of Songkla University", "sign_in": "Sign in",
           "asks": "to continue to ระบบทะเบียนนักศึกษา", "show": "Show", "hide": "Hide", "allow": "Allow",
           "back": "Back to ระบบทะเบียนนักศึกษา", "reference": "Reference", "cancel": "Cancel",
           "sign_out": "Sign out", "try_again": "Try again", "continue": "Continue",
           "another_way": "Choose another way to sign in"},
}
SCREENS = {"phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2},
           "desktop": {"viewport": {"width": 1280, "height": 900}}}


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("language", LANGUAGES)
async def test_every_page_a_student_sees_wears_the_university_and_is_readable(university, browser, request,
                                                                             language, screen):
    words = LANGUAGES[language]
    camera = Camera(request.node.name)
    context = await browser.new_context(base_url=university.base, locale=words["locale"], **SCREENS[screen])
    # The application itself is not running: its pages are a stub, so the story stays on op-proxy.
    await context.route(APP + "/**", lambda route: route.fulfill(
        body="<!doctype html><title>app</title><h1>ระบบทะเบียนนักศึกษา</h1>", content_type="text/html"))
    page = await context.new_page()
    try:
        await page.goto("/")
        await expect(page.get_by_role("heading", level=1)).to_have_text(words["university"])
        await expect(page.get_by_role("img", name=words["university"])).to_be_visible()
        await expect(page.get_by_role("link", name="helpdesk@psu.ac.th")).to_have_attribute(
            "href", "mailto:helpdesk@psu.ac.th")
        await sees(page, camera, "home")

        authorize = "/authorize?" + urlencode({
            "client_id": "consenting-app", "response_type": "code", "scope": "openid profile email",
            "redirect_uri": APP + "/callback", "state": "s-1", "code_challenge": "c" * 43,
            "code_challenge_method": "S256"})
        await page.goto(authorize)
        await expect(page.get_by_role("link", name="PSU Passport")).to_be_visible()
        await expect(page.locator(".organisation")).to_have_text(words["university"])
        await sees(page, camera, "chooser")

        await page.get_by_role("link", name="PSU Passport").click()
        await expect(page.get_by_role("link", name=words["try_again"])).to_be_visible()
        await expect(page.get_by_role("link", name=words["back"])).to_have_attribute("href", APP + "/")
        await expect(page.get_by_text(words["reference"])).to_be_visible()
        await sees(page, camera, "upstream-failed")

        await page.goto(authorize)
        await page.locator(".upstreams a").first.click()
        await expect(page.get_by_text(words["asks"])).to_be_visible()  # the password page names the app
        await page.locator("#username").fill("demo")
        await page.locator("#password").fill("not-the-password")
        await page.get_by_role("button", name=words["show"]).click()  # was it a typo? the toggle shows it
        await expect(page.locator("#password")).to_have_attribute("type", "text")
        await expect(page.get_by_role("button", name=words["show"])).to_have_attribute("aria-pressed", "true")
        await expect(page.get_by_role("button", name=words["show"])).to_have_text(words["hide"])
        await sees(page, camera, "password-shown")
        await page.get_by_role("button", name=words["sign_in"], exact=True).click()
        await expect(page.get_by_role("alert")).to_be_visible()
        await expect(page.locator("#username")).to_have_value("demo")  # kept: only the password to type again
        await expect(page.locator("#password")).to_be_focused()
        await expect(page.get_by_role("link", name=words["another_way"])).to_be_visible()  # the chooser, as in Dex
        await sees(page, camera, "password-wrong")
        await page.locator("#password").fill("demo")
        await page.get_by_role("button", name=words["sign_in"], exact=True).click()

        await expect(page.get_by_role("button", name=words["allow"], exact=True)).to_be_visible()
        await sees(page, camera, "consent")
        await page.get_by_role("button", name=words["allow"], exact=True).click()
        await expect(page).to_have_url(re.compile(re.escape(APP) + r"/callback\?code="))

        # The app asks for a form_post answer: the page that carries it, as a browser without
        # script shows it (held still for the picture: its script would post it at once).
        await context.route("**/static/form-post.js", lambda route: route.abort())
        await page.goto(authorize.replace("state=s-1", "state=s-2") + "&response_mode=form_post")
        await expect(page.get_by_role("button", name=words["continue"])).to_be_visible()
        await sees(page, camera, "form-post")
        await context.unroute("**/static/form-post.js")

        await page.goto("/authorize?" + urlencode({"client_id": "consenting-app", "response_type": "code",
                                                   "redirect_uri": "https://elsewhere.example/steal"}))
        await expect(page.locator("h1.error")).to_be_visible()
        await expect(page.get_by_role("link", name=words["back"])).to_have_attribute("href", APP + "/")
        reference = (await page.locator(".reference code").text_content()).strip()
        assert re.fullmatch(r"[0-9a-f]{12}", reference)
        await sees(page, camera, "error")

        await page.goto("/logout?client_id=consenting-app")
        await expect(page.get_by_role("link", name=words["cancel"])).to_have_attribute("href", APP + "/")
        await sees(page, camera, "logout-confirm")
        await page.get_by_role("link", name=words["cancel"]).click()  # changed their mind: still signed in
        await expect(page).to_have_url(APP + "/")
        await page.goto("/logout?client_id=consenting-app")
        await page.get_by_role("button", name=words["sign_out"], exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await sees(page, camera, "logged-out")

        await page.goto("/no/such/page")
        lost = (await page.locator(".reference code").text_content()).strip()
        await sees(page, camera, "not-found")
    finally:
        with contextlib.suppress(PlaywrightError):
            await camera.shot(page, "last")
        await context.close()

    log = university.log()
    for shown in (reference, lost):  # the reference on the page finds its line in the log
        assert f"request_id={shown}" in log


@pytest.mark.parametrize("screen", SCREENS)
async def test_every_page_of_the_admin_panel_passes_contrast_too(make_server, browser, request, screen):
    server = make_server()
    create_admin(server, "alice")
    camera = Camera(request.node.name)
    context = await browser.new_context(base_url=server.base, locale="th-TH", **SCREENS[screen])
    page = await context.new_page()
    try:
        await sign_in(page, camera, "alice")
        if screen == "phone":
            await page.locator(".navbar-toggler").click()
            await expect(page.locator("#admin-nav")).to_be_visible()
            await camera.shot(page, "menu-open")
        await passes_contrast(page)  # the navbar's links on blue among them
        menu = await page.locator("#admin-nav .nav-link").evaluate_all("links => links.map(a => a.pathname)")
        assert len(menu) >= 5
        for path in menu[1:]:  # every page of the menu, in both languages
            for language in ("th", "en"):
                await page.goto(f"{path}?lang={language}")
                await camera.shot(page, f"{path.strip('/').replace('/', '-')}-{language}")
                await passes_contrast(page)
    finally:
        await context.close()


def test_a_colour_white_text_cannot_be_read_on_is_refused_at_start_up(tmp_path):
    config = write_config(tmp_path, port=free_port(), database_url="sqlite+aiosqlite:///unused.sqlite3",
                          extra='[branding]\nprimary_color = "#5fa8ff"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert refused.value.key == "branding.primary_color"
    assert "4.5:1" in refused.value.reason
    assert contrast_with_white("#003c71") >= 4.5  # the university's own blue is fine


def test_a_logo_from_a_cdn_is_refused_because_pages_load_nothing_from_elsewhere(tmp_path):
    config = write_config(tmp_path, port=free_port(), database_url="sqlite+aiosqlite:///unused.sqlite3",
                          extra='[branding]\nlogo = "https://cdn.example/psu.svg"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert refused.value.key == "branding.logo"
