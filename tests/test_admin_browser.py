"""The admin panel in a real browser (Chromium, locale th-TH): what an admin or a viewer does and sees.

Each test is one person's story against a real op-proxy; every step's screenshot is kept under
``test-artifacts/screenshots/<test name>-<nn>-<step>.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from urllib.parse import urlencode

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from tests.support.admin import create_admin
from tests.support.browser import PHONE, Camera, add_client, chromium, sign_in
from tests.support.person import Arrival, Person
from tests.support.rp import authlib_client, discovery, verify_id_token

THAI_NAME = "ระบบบริหารงานบุคคล"
CALLBACK = "http://127.0.0.1:5400/callback"
AFTER_LOGOUT = "http://127.0.0.1:5400/"
SCRIPT_NAME = '<script>alert("x")</script>'
ALREADY_EXISTS = "มีแอปพลิเคชันที่ใช้ client_id นี้อยู่แล้ว ให้เลือก client_id อื่น"


@pytest.fixture(scope="module")
async def browser():
    async with chromium() as started:
        yield started


@pytest.fixture
def camera(request):
    return Camera(request.node.name)


@pytest.fixture
def dialogs():
    """Every alert/confirm/prompt any page opened (none should: the panel uses SweetAlert2)."""
    return []


@pytest.fixture
async def open_page(browser, camera, dialogs):
    contexts = []

    async def record(dialog):
        dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    async def open_page(server, *, phone: bool = False) -> Page:
        screen = ({"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2} if phone
                  else {"viewport": {"width": 1280, "height": 900}})
        context = await browser.new_context(base_url=server.base, locale="th-TH", timezone_id="Asia/Bangkok",
                                            permissions=["clipboard-read", "clipboard-write"], **screen)
        contexts.append(context)
        page = await context.new_page()
        page.on("dialog", record)
        return page

    yield open_page
    for context in contexts:
        for page in context.pages:  # the state the story ended in (the one to look at when it failed)
            with contextlib.suppress(PlaywrightError):
                await camera.shot(page, "last")
        await context.close()


@pytest.fixture
def admin_server(make_server):
    server = make_server()
    create_admin(server, "alice")
    return server


def sign_in_with(issuer: str, client_id: str, secret: str, redirect_uri: str, person: Person) -> dict:
    """An application's whole authorization code flow (Authlib, PKCE, nonce) with a person at the browser."""
    metadata = discovery(issuer)
    app = authlib_client(issuer, client_id, secret, redirect_uri)
    verifier, nonce = os.urandom(40).hex(), os.urandom(12).hex()
    url, state = app.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    arrival = person.sign_in(url)
    assert isinstance(arrival, Arrival) and arrival.url.startswith(redirect_uri + "?"), arrival
    assert arrival.params["state"] == state
    token = app.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url, code_verifier=verifier)
    claims = verify_id_token(issuer, token["id_token"], client_id, nonce=nonce, access_token=token["access_token"])
    return {"token": token, "claims": claims}


async def register(page: Page, camera: Camera, client_id: str, name: str) -> str:
    """From the list: the register button, the form, and the secret page. Returns the secret shown."""
    await page.goto("/admin/clients")
    await page.get_by_role("link", name="ลงทะเบียนแอปพลิเคชัน").click()
    await expect(page).to_have_url(re.compile(r"/admin/clients/new$"))
    await page.get_by_label("client_id").fill(client_id)
    await page.get_by_label("ชื่อ", exact=True).fill(name)
    await page.get_by_label("Redirect URI").fill(CALLBACK)
    await camera.shot(page, "register-form")
    await page.get_by_role("button", name="ลงทะเบียน", exact=True).click()
    await expect(page.get_by_text("แสดงครั้งเดียว")).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    await camera.shot(page, "secret")
    return (await page.locator(".secret-value").text_content()).strip()


async def no_secret_on(page: Page, secret: str) -> None:
    await page.wait_for_load_state()
    assert secret not in await page.content()
    await expect(page.locator(".secret-value")).to_have_count(0)


# -- 1. Register, see the secret once, edit, and sign someone in with it --------------------------------------

async def test_an_admin_registers_an_app_sees_its_secret_once_edits_it_and_the_app_signs_someone_in(
        admin_server, open_page, camera, dialogs):
    server = admin_server
    page = await open_page(server)
    await sign_in(page, camera, "alice")
    await page.get_by_role("link", name="แอปพลิเคชัน", exact=True).click()
    await expect(page.get_by_role("heading", name="แอปพลิเคชัน")).to_be_visible()
    await camera.shot(page, "list-before")

    secret = await register(page, camera, "hr-portal", THAI_NAME)
    assert len(secret) >= 32
    await expect(page.get_by_text("client_id: hr-portal")).to_be_visible()

    # The copy button puts the secret on the clipboard and says so, then the notice goes away by itself.
    await page.get_by_role("button", name="คัดลอก").click()
    copied = page.locator(".swal2-popup")
    await expect(copied).to_be_visible()
    await expect(copied.locator(".swal2-title")).to_have_text("คัดลอกแล้ว")
    await camera.shot(page, "copied", full_page=False)
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await expect(copied).to_be_hidden()

    # "Done" asks first; "Stay" keeps the secret on the screen.
    await page.get_by_role("link", name="เสร็จสิ้น").click()
    leave = page.locator(".swal2-popup")
    await expect(leave.locator(".swal2-title")).to_have_text("คุณจะไม่เห็นรหัสลับนี้อีก ออกจากหน้านี้หรือไม่?")
    await camera.shot(page, "leave-confirmation", full_page=False)
    await leave.get_by_role("button", name="อยู่ต่อ").click()
    await expect(leave).to_be_hidden()
    await expect(page.locator(".secret-value")).to_have_text(secret)
    await page.get_by_role("link", name="เสร็จสิ้น").click()
    await leave.get_by_role("button", name="ใช่ คัดลอกแล้ว").click()
    await expect(page).to_have_url(server.base + "/admin/clients/hr-portal")
    await expect(page.get_by_role("heading", level=1)).to_have_text(THAI_NAME)
    await camera.shot(page, "client-page")
    await no_secret_on(page, secret)

    # Back to the secret page: Chromium will not show a POST's answer again without resubmitting it...
    try:
        await page.go_back()
    except PlaywrightError as error:
        assert "ERR_CACHE_MISS" in error.message
        await expect(page.locator("body")).to_contain_text("Confirm Form Resubmission")
    await no_secret_on(page, secret)
    await camera.shot(page, "back")
    # ...and resubmitting it registers nothing and shows no secret.
    await page.reload()
    await expect(page.locator("#form-error")).to_have_text(ALREADY_EXISTS)
    await no_secret_on(page, secret)
    await camera.shot(page, "resubmitted")
    for path in ("/admin/clients/hr-portal", "/admin/clients", "/admin/"):
        await page.goto(path)
        await no_secret_on(page, secret)
    await page.goto("/admin/clients/hr-portal")
    await page.reload()
    await no_secret_on(page, secret)

    # Edit: add a post-logout URI.
    await page.get_by_label("URI หลังออกจากระบบ").fill(AFTER_LOGOUT)
    await page.get_by_role("button", name="บันทึก", exact=True).click()
    await expect(page.get_by_text("บันทึกแล้ว")).to_be_visible()
    await expect(page).to_have_url(server.base + "/admin/clients/hr-portal?saved=1")
    await expect(page.get_by_label("URI หลังออกจากระบบ")).to_have_value(AFTER_LOGOUT)
    await expect(page.get_by_label("Redirect URI")).to_have_value(CALLBACK)
    await no_secret_on(page, secret)
    await camera.shot(page, "saved")
    await page.goto("/admin/clients")
    await expect(page.get_by_role("link", name=THAI_NAME)).to_be_visible()
    await camera.shot(page, "list-after")

    # The app, given the secret read off the page, signs the demo person in; the edit took effect too.
    person = Person(server.issuer)
    try:
        result = await asyncio.to_thread(sign_in_with, server.issuer, "hr-portal", secret, CALLBACK, person)
        claims = result["claims"]
        assert claims["preferred_username"] == "demo" and claims["name"] == "สมชาย ใจดี"
        end_session = discovery(server.issuer)["end_session_endpoint"]
        arrival = await asyncio.to_thread(person.visit, end_session + "?" + urlencode(dict(
            id_token_hint=result["token"]["id_token"], post_logout_redirect_uri=AFTER_LOGOUT, state="bye")))
        assert isinstance(arrival, Arrival) and arrival.url.startswith(AFTER_LOGOUT + "?"), arrival
        assert arrival.params["state"] == "bye"
    finally:
        person.close()
    assert dialogs == []


# -- 2. CSRF ---------------------------------------------------------------------------------------------------

async def test_a_post_without_the_csrf_token_is_refused_and_registers_nothing(admin_server, open_page, camera):
    page = await open_page(admin_server)
    await sign_in(page, camera, "alice")
    form = {"client_id": "no-csrf", "name": "ไม่มีโทเคน", "redirect_uris": CALLBACK, "mode": "oidc",
            "token_endpoint_auth_method": "client_secret_basic", "subject_type": "public"}

    refused = await page.request.post("/admin/clients/new", form=form)
    assert refused.status == 400
    assert "คำขอถูกปฏิเสธ" in await refused.text()
    wrong = await page.request.post("/admin/clients/new", form={**form, "csrf_token": "not-the-token"})
    assert wrong.status == 400
    # A form submitted by the browser itself, as a forged page would: the refusal is what the admin sees.
    await page.goto("/admin/clients")
    await page.evaluate("""form => {
        const forged = document.createElement("form");
        forged.method = "post";
        forged.action = "/admin/clients/new";
        for (const [name, value] of Object.entries(form)) {
            const input = document.createElement("input");
            input.type = "hidden";
            input.name = name;
            input.value = value;
            forged.append(input);
        }
        document.body.append(forged);
        forged.submit();
    }""", form)
    await expect(page.get_by_role("heading", name="คำขอถูกปฏิเสธ")).to_be_visible()
    await camera.shot(page, "refused")

    await page.goto("/admin/clients?q=no-csrf")
    await expect(page.get_by_text("ไม่พบแอปพลิเคชัน")).to_be_visible()
    await camera.shot(page, "nothing-registered")
    missing = await page.goto("/admin/clients/no-csrf")
    assert missing.status == 404

    # The same request with the page's token goes through: the token was the only thing missing.
    await page.goto("/admin/clients")
    token = await page.locator("body").get_attribute("data-csrf")
    accepted = await page.request.post("/admin/clients/new", form={**form, "client_id": "with-csrf",
                                                                     "name": "มีโทเคน", "csrf_token": token})
    assert accepted.status == 200 and "แสดงครั้งเดียว" in await accepted.text()
    await page.goto("/admin/clients")
    await expect(page.locator("tbody tr")).to_have_count(6)  # the 5 of the config file and with-csrf
    await expect(page.get_by_role("link", name="มีโทเคน", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="ไม่มีโทเคน")).to_have_count(0)
    await expect(page.get_by_text("no-csrf", exact=True)).to_have_count(0)
    await camera.shot(page, "list")


# -- 3. Viewer -------------------------------------------------------------------------------------------------

async def test_a_viewer_sees_the_apps_but_cannot_change_them(make_server, open_page, camera):
    server = make_server()
    create_admin(server, "victor", role="viewer")
    add_client(server, "hr-portal", THAI_NAME)
    page = await open_page(server)
    await sign_in(page, camera, "victor")
    await expect(page.get_by_text("victor (ผู้ดูอย่างเดียว)")).to_be_visible()

    await page.get_by_role("link", name="แอปพลิเคชัน", exact=True).click()
    await expect(page.locator("tbody tr")).to_have_count(6)
    await expect(page.get_by_role("link", name=THAI_NAME)).to_be_visible()
    await expect(page.get_by_role("link", name="Demo application")).to_be_visible()
    await expect(page.get_by_role("link", name="ลงทะเบียนแอปพลิเคชัน")).to_have_count(0)
    await camera.shot(page, "list")

    await page.get_by_role("link", name=THAI_NAME).click()
    await expect(page).to_have_url(server.base + "/admin/clients/hr-portal")
    await expect(page.locator("#client-form fieldset")).to_have_js_property("disabled", True)
    await expect(page.get_by_label("ชื่อ", exact=True)).to_be_disabled()
    await expect(page.get_by_label("ชื่อ", exact=True)).to_have_value(THAI_NAME)
    await expect(page.get_by_role("button", name="บันทึก", exact=True)).to_have_count(0)
    await expect(page.get_by_role("button", name="ลบ", exact=True)).to_have_count(0)
    await expect(page.get_by_role("button", name="เปลี่ยน client secret")).to_have_count(0)
    await expect(page.get_by_role("button", name="ปิดใช้งาน")).to_have_count(0)
    await camera.shot(page, "client-read-only")
    token = await page.locator("#client-form input[name=csrf_token]").get_attribute("value")
    assert token

    await page.goto("/admin/clients/new")
    await expect(page.locator("#client-form fieldset")).to_have_js_property("disabled", True)
    await expect(page.get_by_role("button", name="ลงทะเบียน", exact=True)).to_have_count(0)
    await camera.shot(page, "new-form-read-only")

    crafted = {"csrf_token": token, "client_id": "by-viewer", "name": "แอบลงทะเบียน", "redirect_uris": CALLBACK}
    created = await page.request.post("/admin/clients/new", form=crafted)
    assert created.status == 403 and "ไม่ได้รับอนุญาต" in await created.text()
    edited = await page.request.post("/admin/clients/hr-portal", form={**crafted, "name": "เปลี่ยนชื่อ"})
    assert edited.status == 403
    deleted = await page.request.post("/admin/clients/hr-portal/delete", form={"csrf_token": token})
    assert deleted.status == 403

    await page.goto("/admin/clients")
    await expect(page.locator("tbody tr")).to_have_count(6)
    await expect(page.get_by_role("link", name=THAI_NAME)).to_be_visible()
    await expect(page.get_by_text("by-viewer")).to_have_count(0)
    await camera.shot(page, "list-unchanged")


# -- 4. Escaping -----------------------------------------------------------------------------------------------

async def test_a_name_holding_a_script_tag_is_shown_as_text(admin_server, open_page, camera, dialogs):
    page = await open_page(admin_server)
    await sign_in(page, camera, "alice")
    await register(page, camera, "script-name", SCRIPT_NAME)  # the secret page's heading shows it as text

    await page.goto("/admin/clients")
    await expect(page.locator("a.client-name", has_text="alert")).to_have_text(SCRIPT_NAME)
    await expect(page.locator("main script")).to_have_count(0)
    await camera.shot(page, "list")

    await page.locator("a.client-name", has_text="alert").click()
    await expect(page).to_have_url(re.compile(r"/admin/clients/script-name$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(SCRIPT_NAME)
    await expect(page.get_by_label("ชื่อ", exact=True)).to_have_value(SCRIPT_NAME)
    await expect(page).to_have_title(f"{SCRIPT_NAME} · op-proxy")
    await expect(page.locator("main script")).to_have_count(0)
    await camera.shot(page, "form")
    assert dialogs == []


async def test_the_delete_confirmation_shows_a_script_name_as_text(admin_server, open_page, camera, dialogs):
    add_client(admin_server, "script-name", SCRIPT_NAME)
    page = await open_page(admin_server)
    await sign_in(page, camera, "alice")
    await page.goto("/admin/clients/script-name")
    await page.get_by_role("button", name="ลบ", exact=True).click()
    title = page.locator(".swal2-popup .swal2-title")
    await expect(title).to_be_visible()
    await camera.shot(page, "delete-confirmation", full_page=False)
    await expect(title).to_have_text(f"ลบ {SCRIPT_NAME} หรือไม่? แอปที่ใช้จะไม่สามารถให้ใครเข้าสู่ระบบได้อีก")
    await expect(title.locator("script")).to_have_count(0)
    assert dialogs == []


# -- 5. Delete -------------------------------------------------------------------------------------------------

async def test_deleting_an_app_asks_first_cancel_keeps_it_and_confirming_removes_it(admin_server, open_page,
                                                                                     camera, dialogs):
    add_client(admin_server, "hr-portal", THAI_NAME)
    page = await open_page(admin_server)
    await sign_in(page, camera, "alice")
    await page.goto("/admin/clients")
    await expect(page.locator("tbody tr")).to_have_count(6)
    await page.get_by_role("link", name=THAI_NAME).click()
    await expect(page).to_have_url(admin_server.base + "/admin/clients/hr-portal")

    question = f"ลบ {THAI_NAME} หรือไม่? แอปที่ใช้จะไม่สามารถให้ใครเข้าสู่ระบบได้อีก"
    confirmation = page.locator(".swal2-popup")
    await page.get_by_role("button", name="ลบ", exact=True).click()
    await expect(confirmation.locator(".swal2-title")).to_have_text(question)
    await camera.shot(page, "confirmation", full_page=False)
    await confirmation.get_by_role("button", name="ยกเลิก").click()
    await expect(confirmation).to_be_hidden()
    await expect(page).to_have_url(admin_server.base + "/admin/clients/hr-portal")
    await page.goto("/admin/clients")
    await expect(page.get_by_role("link", name=THAI_NAME)).to_be_visible()
    await expect(page.locator("tbody tr")).to_have_count(6)
    await camera.shot(page, "kept")

    await page.get_by_role("link", name=THAI_NAME).click()
    await page.get_by_role("button", name="ลบ", exact=True).click()
    await expect(confirmation.locator(".swal2-title")).to_have_text(question)
    await confirmation.get_by_role("button", name="ลบ", exact=True).click()
    await expect(page).to_have_url(admin_server.base + "/admin/clients?deleted=hr-portal")
    await expect(page.get_by_text("ลบแอปพลิเคชัน hr-portal แล้ว")).to_be_visible()
    await expect(page.get_by_role("link", name=THAI_NAME)).to_have_count(0)
    await expect(page.locator("tbody tr")).to_have_count(5)
    await camera.shot(page, "deleted")
    gone = await page.goto("/admin/clients/hr-portal")
    assert gone.status == 404
    assert dialogs == []


# -- 6. Live dashboard ----------------------------------------------------------------------------------------

async def test_the_dashboard_counts_a_new_sign_in_without_a_reload(admin_server, open_page, camera):
    server = admin_server
    page = await open_page(server)
    requests = []
    page.on("request", lambda request: requests.append((request.resource_type, request.url)))
    await sign_in(page, camera, "alice")
    signins = page.locator("#signins-24h")
    await expect(signins).to_be_visible()
    await expect(page.locator("#dashboard-status")).to_have_text("สด")  # "Live": the event stream is open
    before = int((await signins.text_content()).strip())
    navigations = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))

    person = Person(server.issuer)
    try:
        await asyncio.to_thread(sign_in_with, server.issuer, "demo", "demo-secret",
                                "http://127.0.0.1:5000/callback", person)
    finally:
        person.close()

    await expect(signins).to_have_text(str(before + 1), timeout=15000)
    assert navigations == []  # the number changed in place
    assert any(kind == "eventsource" for kind, _url in requests), requests  # pushed by server-sent events...
    assert not any(url.endswith("/admin/dashboard.json") for _kind, url in requests)  # ...not polled
    await camera.shot(page, "dashboard-updated")


# -- 7. Phone --------------------------------------------------------------------------------------------------

async def scroll_width(page: Page) -> int:
    return await page.evaluate("document.documentElement.scrollWidth")


async def test_the_login_page_and_the_list_fit_a_phone(admin_server, open_page, camera):
    add_client(admin_server, "research-information-management-system",
               "ระบบสารสนเทศเพื่อการบริหารจัดการงานวิจัยและนวัตกรรมของมหาวิทยาลัย")
    page = await open_page(admin_server, phone=True)
    await page.goto("/admin/login")
    await expect(page.get_by_label("ชื่อผู้ใช้")).to_be_visible()
    await expect(page.get_by_role("button", name="เข้าสู่ระบบ", exact=True)).to_be_in_viewport()
    assert await scroll_width(page) <= PHONE["width"]
    await sign_in(page, camera, "alice")

    await page.goto("/admin/clients")
    toggler = page.get_by_role("button", name="เมนู")
    await expect(toggler).to_be_visible()
    menu_link = page.get_by_role("link", name="แอปพลิเคชัน", exact=True)
    await expect(menu_link).to_be_hidden()
    await expect(page.get_by_role("button", name="ออกจากระบบ")).to_be_hidden()
    await expect(page.get_by_role("link", name="ลงทะเบียนแอปพลิเคชัน")).to_be_in_viewport()
    await expect(page.locator("tbody tr")).to_have_count(6)
    assert await scroll_width(page) <= PHONE["width"]
    await camera.shot(page, "list")

    await toggler.click()
    await expect(menu_link).to_be_visible()
    await expect(page.get_by_role("button", name="ออกจากระบบ")).to_be_visible()
    assert await scroll_width(page) <= PHONE["width"]
    await camera.shot(page, "menu-open")


# -- 8. Every page -----------------------------------------------------------------------------------------------

MENU_TH = ("แดชบอร์ด", "แอปพลิเคชัน", "บันทึกการตรวจสอบ", "ผู้ให้บริการยืนยันตัวตน", "กุญแจลงนาม", "ผู้ใช้และบทบาท")
MENU_EN = ("Dashboard", "Applications", "Audit log", "Identity providers", "Signing keys", "Users and roles")


async def test_every_page_of_the_menu_opens_in_thai_and_english_without_a_script_error(admin_server, open_page,
                                                                                        camera, dialogs):
    page = await open_page(admin_server)
    # What the page's own scripts and the Content-Security-Policy would complain about.
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda response: response.status >= 400
            and problems.append(f"{response.status} {response.url}"))
    page.on("requestfailed", lambda request: request.resource_type != "eventsource"
            and problems.append(f"{request.url}: {request.failure}"))
    await sign_in(page, camera, "alice")

    for language, menu in (("th", MENU_TH), ("en", MENU_EN)):
        if language == "en":
            await page.get_by_role("link", name="English").click()
        for name in menu:
            await page.locator("#admin-nav").get_by_role("link", name=name, exact=True).click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(name)
            await expect(page.locator("html")).to_have_attribute("lang", language)
            await camera.shot(page, f"{language}-{MENU_EN[menu.index(name)].lower().replace(' ', '-')}")
    assert problems == [] and dialogs == []


CONTRAST_OF = """(element) => {
  const channel = (value) => {
    value /= 255; return value <= 0.03928 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4; };
  const luminance = (css) => { const [r, g, b] = css.match(/\\d+(\\.\\d+)?/g).map(Number);
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b); };
  let node = element, background = "rgba(0, 0, 0, 0)";
  while (node && /rgba\\(0, 0, 0, 0\\)|transparent/.test(background)) {
    background = getComputedStyle(node).backgroundColor; node = node.parentElement; }
  const [a, b] = [luminance(getComputedStyle(element).color), luminance(background)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


async def test_the_yellow_rotate_buttons_are_readable_to_someone_with_low_vision(admin_server, open_page, camera):
    """WCAG 2.1 AA: text needs a 4.5:1 contrast with what is behind it."""
    add_client(admin_server, "hr-portal", THAI_NAME)
    page = await open_page(admin_server)
    await sign_in(page, camera, "alice")
    await page.goto("/admin/clients/hr-portal")
    button = page.get_by_role("button", name="เปลี่ยน client secret")
    await expect(button).to_be_visible()
    await camera.shot(page, "rotate-button")
    assert await button.evaluate(CONTRAST_OF) >= 4.5
