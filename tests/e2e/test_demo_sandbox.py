"""`lacre demo`: the sandbox seeds, runs the real bot against its fakes, and its page API works."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sandbox.clock import ShiftedClock
from bot.sandbox.demo import DEMO_ACCOUNT, Sandbox, demo
from bot.sandbox.web import sanitize_html
from storage.audit import audit
from tests.support.delivery import free_port

SEEDED_CREDITS = 97  # Profissional's 120, less the seals of the seeded history
SEEDED_NOTIFICATION_CREDITS = 25  # 5 with the plan, 20 granted


class Page:
    """The demo page's JSON API, as the page's script calls it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def state(self) -> dict[str, Any]:
        answer = await self.client.get("/api/state")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, json=body)

    async def send(self, text: str) -> None:
        answer = await self.post("/api/send", {"text": text})
        assert answer.status_code == 200, answer.text

    async def until(
        self, check: Callable[[dict[str, Any]], Any], within: float = 15.0, what: str = ""
    ) -> Any:
        """Poll the state (as the page does) until `check` returns something truthy."""
        deadline = time.monotonic() + within
        while True:
            state = await self.state()
            found = check(state)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"not seen within {within} s: {what or check}")
            await asyncio.sleep(0.1)

    async def press(self, label_part: str, *, after: int = 0, within: float = 10.0) -> int:
        """Tap the newest button containing `label_part` (on a message with id >= `after`);
        returns the id of the message that carried it."""

        def find(state: dict[str, Any]) -> tuple[int, str] | None:
            for message in reversed(state["chat"]):
                if message["id"] < after:
                    break
                for row in message["buttons"]:
                    for button in row:
                        if label_part in button["text"] and "data" in button:
                            return message["id"], button["data"]
            return None

        message_id, data = await self.until(find, within, f"a button with {label_part!r}")
        answer = await self.post("/api/tap", {"message_id": message_id, "data": data})
        assert answer.status_code == 200, answer.text
        return int(message_id)


def bot_texts(state: dict[str, Any]) -> list[str]:
    return [re.sub(r"<[^>]+>", "", m["html"]) for m in state["chat"] if m["from_bot"]]


def texts_to(state: dict[str, Any], number: str) -> list[dict[str, Any]]:
    return [m for m in state["texts"] if m["to"] == number]


async def started(db_path: Path, *, reset: bool = False) -> Sandbox:
    sandbox = Sandbox(free_port(), db_path=db_path, reset=reset)
    began = time.perf_counter()
    await sandbox.start()
    print(
        f"\nsandbox ready in {time.perf_counter() - began:.2f} s "
        f"({'seeded' if sandbox.seeded else 'reused'} {db_path.name})"
    )
    return sandbox


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    running = await started(tmp_path / "lacre-demo.db")
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def page(sandbox: Sandbox) -> AsyncIterator[Page]:
    async with httpx.AsyncClient(base_url=sandbox.url, trust_env=False, timeout=10) as client:
        yield Page(client)


async def test_the_owner_seals_a_draft_resends_by_sms_gets_a_refund_and_a_nudge(
    sandbox: Sandbox, page: Page
) -> None:
    state = await page.until(lambda s: len(s["chat"]) >= 2 and s, what="the greeting")
    assert state["account"] == {"name": DEMO_ACCOUNT, "plan": "Profissional"}
    assert state["balances"] == {
        "credits": SEEDED_CREDITS,
        "notification_credits": SEEDED_NOTIFICATION_CREDITS,
    }
    assert state["emails"] == [] and state["texts"] == []
    assert [c["command"] for c in state["commands"]][:3] == ["envelopes", "saldo", "planos"]

    # /envelopes, the drafts tab, the draft, Lacrar, Confirmar.
    await page.send("/envelopes")
    listing = await page.press("Rascunhos (3)")
    await page.press("ENV-2401", after=listing)
    await page.press("Lacrar (3 créditos)", after=listing)
    await page.press("Confirmar", after=listing)
    state = await page.until(
        lambda s: len(s["emails"]) == 2 and s, what="the two signature e-mails"
    )
    assert state["balances"]["credits"] == SEEDED_CREDITS - 3
    assert sorted(e["to"] for e in state["emails"]) == [
        "mariana.costa@example.com",
        "rafael.almeida@example.com",
    ]
    assert all("Contrato de locação - Apto 42" in e["text"] for e in state["emails"])
    assert any("lacrado" in text.lower() for text in bot_texts(state))

    # Resend to Mariana by SMS: confirmed, sent, delivered through signed status callbacks.
    done = await page.press("Informações do Envelope", after=listing)
    await page.press("Reenviar", after=done)
    await page.press("Mariana Costa", after=done)
    await page.press("SMS (1 crédito de notificação)", after=done)
    confirm = await page.press("Confirmar", after=done + 1)
    state = await page.until(
        lambda s: [m for m in texts_to(s, "(11) 98765-4321") if m["status"] == "delivered"] and s,
        what="Mariana's SMS delivered",
    )
    assert state["balances"]["notification_credits"] == SEEDED_NOTIFICATION_CREDITS - 1
    (sms,) = texts_to(state, "(11) 98765-4321")
    assert sms["channel"] == "sms" and "ENV-2401" in sms["body"]

    # The next paid delivery fails at the carrier: the credit comes back, Ana is told.
    armed = await page.post("/api/fail-next", {})
    assert armed.status_code == 200 and (await page.state())["fail_next"] is True
    done = await page.press("Informações do Envelope", after=confirm)
    await page.press("Reenviar", after=done)
    await page.press("Rafael Almeida", after=done)
    await page.press("SMS (1 crédito de notificação)", after=done)
    await page.press("Confirmar", after=done + 1)
    state = await page.until(
        lambda s: (
            [m for m in texts_to(s, "(11) 99182-7364") if m["status"] == "failed"]
            and any("devolvido" in text for text in bot_texts(s))
            and s
        ),
        what="Rafael's SMS failed, refunded and reported",
    )
    assert state["fail_next"] is False
    assert texts_to(state, "(11) 99182-7364")[0]["error_code"] == 30005
    state = await page.until(
        lambda s: s["balances"]["notification_credits"] == SEEDED_NOTIFICATION_CREDITS - 1 and s,
        what="the refund",
    )
    notice = next(text for text in bot_texts(state) if "devolvido" in text)
    assert "Rafael Almeida" in notice and "não foi entregue" in notice

    # One hour later the 1-day nudge of ENV-2391 is due; the next scheduler tick sends it.
    moved = await page.post("/api/clock", {"seconds": 3600})
    assert moved.status_code == 200
    state = await page.until(
        lambda s: any("Prazo se aproximando" in t and "ENV-2391" in t for t in bot_texts(s)) and s,
        what="the nudge of ENV-2391",
    )
    assert state["offset_label"] == "+1 h à frente"
    with sandbox.app.engine.connect() as conn:
        assert audit(conn) == []


async def test_bad_requests_to_the_page_api_are_refused_and_change_nothing(
    sandbox: Sandbox, page: Page
) -> None:
    # Settled: the greeting and the nudge that was already due when the sandbox started.
    before = await page.until(
        lambda s: len(s["chat"]) >= 3 and s["answers"] == [] and s, what="the opening messages"
    )
    client = page.client
    foreign = await client.get("/api/state", headers={"Host": "evil.example:8080"})
    assert foreign.status_code == 400
    form = await client.post("/api/send", data={"text": "/saldo"})
    assert form.status_code == 415
    empty = await page.post("/api/send", {"text": "   "})
    assert (empty.status_code, empty.json()) == (400, {"error": "text is required"})
    long = await page.post("/api/send", {"text": "x" * 4097})
    assert long.status_code == 400
    greeting = next(m for m in before["chat"] if m["from_bot"])
    forged = await page.post("/api/tap", {"message_id": greeting["id"], "data": "env:1:seal"})
    assert forged.status_code == 404
    missing = await page.post("/api/tap", {"message_id": 999, "data": "env:1"})
    assert missing.status_code == 404
    backwards = await page.post("/api/clock", {"seconds": -3600})
    assert backwards.status_code == 400
    too_far = await page.post("/api/clock", {"seconds": 400 * 86400})
    assert too_far.status_code == 400
    signed = await page.post("/api/sign", {"ref": "ENV-2390", "email": "carlos.santos@example.com"})
    assert signed.status_code == 409 and signed.json()["error"]
    unknown = await page.post("/api/sign", {"ref": "ENV-9999", "email": "x@example.com"})
    assert unknown.status_code == 409
    after = await page.state()
    assert after["chat"] == before["chat"]
    assert after["balances"] == before["balances"]
    assert after["envelopes"] == before["envelopes"]
    assert after["offset_label"] == "relógio real"


async def test_the_page_is_served_with_its_own_assets_and_a_strict_policy(page: Page) -> None:
    index = await page.client.get("/")
    assert index.status_code == 200 and "Lacre" in index.text
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert "http" not in re.sub(r'(href|src)="/static/[^"]+"', "", index.text)  # no CDN
    for asset in ("/static/app.js", "/static/app.css"):
        assert (await page.client.get(asset)).status_code == 200
    payment = await page.client.get("/pagamento", params={"item": "<script>x</script>"})
    assert payment.status_code == 200 and "<script>x" not in payment.text


async def test_signing_in_the_sandbox_completes_the_envelope_and_a_restart_keeps_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "lacre-demo.db"
    first = await started(db)
    try:
        assert first.seeded
        account_id = first.account_id
        async with httpx.AsyncClient(base_url=first.url, trust_env=False) as client:
            page = Page(client)
            signed = await page.post(
                "/api/sign", {"ref": "ENV-2390", "email": "juliana.pereira@example.com"}
            )
            assert signed.status_code == 200, signed.text
            state = await page.state()
            assert "ENV-2390" not in [e["ref"] for e in state["envelopes"]]
            assert (await page.post("/api/clock", {"seconds": 86400})).status_code == 200
            moved_to = datetime.fromisoformat((await page.state())["now"])
    finally:
        await first.stop()

    again = await started(db)
    try:
        assert not again.seeded and again.account_id == account_id
        async with httpx.AsyncClient(base_url=again.url, trust_env=False) as client:
            state = await Page(client).state()
        assert "ENV-2390" not in [e["ref"] for e in state["envelopes"]]
        assert datetime.fromisoformat(state["now"]) >= moved_to  # time does not go back
        assert state["offset_label"].startswith("+1 dia")
    finally:
        await again.stop()

    fresh = await started(db, reset=True)
    try:
        assert fresh.seeded
        async with httpx.AsyncClient(base_url=fresh.url, trust_env=False) as client:
            state = await Page(client).state()
        assert "ENV-2390" in [e["ref"] for e in state["envelopes"]]
        assert state["offset_label"] == "relógio real"
        assert state["balances"]["credits"] == SEEDED_CREDITS
    finally:
        await fresh.stop()


def test_lacre_demo_prints_the_address_serves_the_page_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    lacre = Path(sys.executable).with_name("lacre")
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
    began = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
        [str(lacre), "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "open http://" in line:
                break
        ready = time.perf_counter() - began
        output = "".join(lines)
        assert f"open http://127.0.0.1:{port}" in output, output
        print(f"\n`lacre demo` printed its address {ready:.2f} s after the process started")
        print(output.strip())
        page = httpx.get(f"http://127.0.0.1:{port}/", trust_env=False, timeout=10)
        assert page.status_code == 200 and "Lacre" in page.text
        assert (tmp_path / "lacre-demo.db").exists()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0


def test_lacre_demo_on_a_taken_port_says_so_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = demo(port=port, db_path=str(tmp_path / "lacre-demo.db"))
    out = capsys.readouterr().out
    assert code == 1
    assert f"could not start the sandbox on port {port}" in out
    assert "--port" in out
    assert list(tmp_path.iterdir()) == []


def test_telegram_html_is_sanitised_to_its_own_tag_set() -> None:
    assert sanitize_html("<b>Oi</b> <i>x</i> <code>1</code>") == (
        "<b>Oi</b> <i>x</i> <code>1</code>"
    )
    assert sanitize_html('<a href="https://ex.com/a?b=1&amp;c=2">l</a>') == (
        '<a href="https://ex.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">l</a>'
    )
    assert sanitize_html('<a href="javascript:alert(1)">l</a>') == "l"
    assert sanitize_html("<script>alert(1)</script>ok") == "ok"
    assert sanitize_html('<img src=x onerror="alert(1)">') == ""
    assert sanitize_html('<b onclick="x()">a</b>') == "<b>a</b>"
    assert sanitize_html("&lt;b&gt; 1 &lt; 2 &amp; 3") == "&lt;b&gt; 1 &lt; 2 &amp; 3"
    assert sanitize_html("<b><i>open") == "<b><i>open</i></b>"
    assert sanitize_html("<tg-spoiler>s</tg-spoiler>") == '<span class="tg-spoiler">s</span>'


def test_the_shifted_clock_only_moves_forward_and_never_goes_back() -> None:
    wall = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]
    clock = ShiftedClock(wall=lambda: wall[0])
    assert clock.now() == wall[0]
    assert clock.advance(timedelta(hours=1)) == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    wall[0] -= timedelta(minutes=30)  # the machine's clock is set back
    assert clock.now() == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.advance(timedelta(0))
    with pytest.raises(ValueError):
        clock.advance(timedelta(hours=-1))
    assert clock.now().tzinfo is UTC
