"""The demo page in a real browser: Debian's Chromium, headless, driven by Playwright."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.demo import Sandbox
from tests.support.delivery import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
WAIT_MS = 20_000

if not CHROMIUM.exists():
    reason = f"{CHROMIUM} is missing: install Debian's chromium package to run the browser test"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

from playwright.async_api import Page, async_playwright, expect  # noqa: E402  # after the skip

# The newest bot message (optionally: that one, or newer than that one) with a button whose
# label contains the text; returns its id or null.
_FIND_BUTTON = """([label, only, newer]) => {
  for (const m of [...document.querySelectorAll('.msg.bot')].reverse()) {
    const id = Number(m.dataset.id);
    if (only && id !== only) continue;
    if (id <= newer) break;
    for (const b of m.querySelectorAll('button.kb')) {
      if (b.textContent.includes(label)) return id;
    }
  }
  return null;
}"""


async def press(page: Page, label: str, *, message: int = 0, newer_than: int = 0) -> int:
    """Click a bot button as a user would; returns the id of the message that carried it."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        found = await page.evaluate(_FIND_BUTTON, [label, message, newer_than])
        if found is not None:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no button with {label!r} on the page")
        await page.wait_for_timeout(100)
    await page.locator(f'.msg[data-id="{found}"] button.kb', has_text=label).first.click()
    return int(found)


def chat_message(page: Page, *parts: str) -> object:
    locator = page.locator(".msg.bot")
    for part in parts:
        locator = locator.filter(has_text=part)
    return locator


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    running = Sandbox(free_port(), db_path=tmp_path / "lacre-demo.db")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_an_owner_uses_the_demo_page_from_sealing_to_a_refund_and_a_nudge(
    sandbox: Sandbox,
) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900}, locale="pt-BR")
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(sandbox.url)
            await expect(chat_message(page, "Olá, Ana Ribeiro")).to_have_count(1, timeout=WAIT_MS)
            await expect(page.locator("#balance-credits")).to_have_text("97")
            await expect(page.locator("#balance-notif")).to_have_text("25")

            # The command menu, then /envelopes typed into the composer.
            await page.locator("#menu-button").click()
            await expect(page.locator("#commands .command")).to_have_count(8)
            await page.locator("#menu-button").click()
            await page.locator("#composer-input").fill("/envelopes")
            await page.locator("#composer-input").press("Enter")
            await expect(page.locator(".msg.me", has_text="/envelopes")).to_have_count(1)

            listing = await press(page, "Rascunhos (3)")
            await press(page, "ENV-2401", message=listing)
            await press(page, "Lacrar (3 créditos)", message=listing)
            await expect(
                page.locator(f'.msg[data-id="{listing}"]', has_text="Custo: 3 créditos")
            ).to_have_count(1, timeout=WAIT_MS)
            await press(page, "Confirmar", message=listing)
            await expect(page.locator("#balance-credits")).to_have_text("94", timeout=WAIT_MS)
            await expect(page.locator("#emails .email")).to_have_count(2, timeout=WAIT_MS)
            await expect(page.locator("#emails")).to_contain_text("mariana.costa@example.com")
            await expect(page.locator("#emails")).to_contain_text("rafael.almeida@example.com")

            # Resend to Mariana by SMS: delivered.
            await press(page, "Informações do Envelope", message=listing)
            await press(page, "Reenviar", message=listing)
            await press(page, "Mariana Costa", message=listing)
            await press(page, "SMS (1 crédito", message=listing)
            confirm = await press(page, "Confirmar", newer_than=listing)
            mariana = page.locator(".text-msg", has_text="(11) 98765-4321")
            await expect(mariana).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
            await expect(mariana).to_contain_text("entregue")
            await expect(page.locator("#balance-notif")).to_have_text("24")

            # Make the next paid delivery fail, resend to Rafael: it fails, the credit returns.
            await page.locator("#fail-next").click()
            await expect(page.locator("#fail-next")).to_have_class("btn danger armed")
            await press(page, "Informações do Envelope", message=confirm)
            await press(page, "Reenviar", message=confirm)
            await press(page, "Rafael Almeida", message=confirm)
            await press(page, "SMS (1 crédito", message=confirm)
            await press(page, "Confirmar", newer_than=confirm)
            rafael = page.locator(".text-msg", has_text="(11) 99182-7364")
            await expect(rafael).to_have_attribute("data-status", "failed", timeout=WAIT_MS)
            await expect(rafael).to_contain_text("erro 30005")
            await expect(
                chat_message(page, "não foi entregue", "Rafael Almeida", "devolvido")
            ).to_have_count(1, timeout=WAIT_MS)
            await expect(page.locator("#balance-notif")).to_have_text("24", timeout=WAIT_MS)

            # One hour later the scheduler nudges about ENV-2391.
            await page.locator("button[data-advance='3600']").click()
            await expect(page.locator("#clock-offset")).to_have_text("+1 h à frente")
            await expect(chat_message(page, "Prazo se aproximando", "ENV-2391")).to_have_count(
                1, timeout=WAIT_MS
            )
            # Open the newest e-mail, and let the toast and the animations finish.
            await page.locator("#emails details.email summary").first.click()
            await expect(page.locator("#emails .email-text").first).to_be_visible()
            await page.wait_for_timeout(3000)
            OUTPUT.mkdir(exist_ok=True)
            shot = OUTPUT / "demo-final.png"
            await page.screenshot(path=str(shot))
            print(f"\nscreenshot of the final page: {shot}")
            assert errors == []
        finally:
            await browser.close()
