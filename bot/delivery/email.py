"""The signature request by e-mail: the message in the account's language, sent with aiosmtplib."""

from __future__ import annotations

import html
import logging
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr

import aiosmtplib

from bot.delivery.ports import Job
from bot.i18n import LANGUAGES, Raw, resolve_language, t, when
from bot.phones import mask_email
from bot.settings import Settings
from core.delivery import (
    REASON_SMTP_REJECTED,
    REASON_SMTP_UNAVAILABLE,
    Attempt,
    Verdict,
    smtp_verdict,
)

log = logging.getLogger(__name__)


def _language(code: str) -> str:
    return code if code in LANGUAGES else resolve_language(code)


def _plain(key: str, language: str, **values: str) -> str:
    """A catalog text for the plain-text part: nothing is HTML-escaped there."""
    return t(key, language, **{name: Raw(value) for name, value in values.items()})


def build_message(job: Job, sender_address: str) -> EmailMessage:
    """The "Requisição de Assinatura": text and HTML parts, the account's name as sender."""
    ctx = job.context
    lang = _language(ctx.language)
    deadline = when(ctx.expires_at, ctx.timezone, lang) if ctx.expires_at else ""

    msg = EmailMessage()
    msg["Subject"] = _plain("email.subject", lang, title=ctx.envelope_title)
    msg["From"] = formataddr((ctx.account_name, sender_address))
    msg["To"] = formataddr((ctx.signer_name, ctx.notification.destination))
    domain = sender_address.rpartition("@")[2] or "lacre.local"
    msg["Message-ID"] = make_msgid(idstring=f"lacre-{ctx.notification.id}", domain=domain)
    msg["Content-Language"] = lang
    msg["Auto-Submitted"] = "auto-generated"

    text_lines = [
        _plain("email.greeting", lang, name=ctx.signer_name),
        "",
        _plain("email.intro", lang, account=ctx.account_name, title=ctx.envelope_title),
    ]
    if deadline:
        text_lines.append(_plain("email.deadline", lang, deadline=deadline))
    text_lines += [
        "",
        f"{_plain('email.action', lang)}: {job.link}",
        "",
        "--",
        _plain("email.footer", lang, account=ctx.account_name),
    ]
    msg.set_content("\n".join(text_lines) + "\n")

    href = html.escape(job.link, quote=True)
    deadline_html = f"<p>{t('email.deadline', lang, deadline=deadline)}</p>" if deadline else ""
    body = (
        f'<!doctype html><html lang="{lang}"><body style="font-family:Arial,sans-serif;'
        'color:#222;max-width:560px;margin:0 auto;padding:16px">'
        f"<h2>{t('email.heading', lang)}</h2>"
        f"<p>{t('email.greeting', lang, name=ctx.signer_name)}</p>"
        f"<p>{t('email.intro', lang, account=ctx.account_name, title=ctx.envelope_title)}</p>"
        f"{deadline_html}"
        f'<p style="margin:24px 0"><a href="{href}" style="background:#1a56db;color:#fff;'
        'padding:12px 20px;border-radius:6px;text-decoration:none;font-weight:bold">'
        f"{t('email.action', lang)}</a></p>"
        f'<p style="font-size:13px;color:#555">{t("email.link_hint", lang)}<br>'
        f'<a href="{href}">{html.escape(job.link)}</a></p>'
        f'<hr><p style="font-size:12px;color:#777">'
        f"{t('email.footer', lang, account=ctx.account_name)}</p>"
        "</body></html>"
    )
    msg.add_alternative(body, subtype="html")
    return msg


class SmtpEmailSender:
    """Sends one message per call; a 4xx or a lost connection is RETRY, a 5xx is REJECTED."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str = "",
        password: str = "",
        tls: str = "none",
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.sender_address = parseaddr(sender)[1] or sender
        Address(addr_spec=self.sender_address)  # refuse a malformed SMTP_FROM at start
        self.username, self.password = username, password
        self.tls = tls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpEmailSender:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout_seconds,
        )

    async def send(self, job: Job) -> Attempt:
        msg = build_message(job, self.sender_address)
        to = mask_email(job.notification.destination)
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.host,
                port=self.port,
                username=self.username or None,
                password=self.password or None,
                use_tls=self.tls == "tls",
                start_tls=self.tls == "starttls",
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            code = min((r.code for r in exc.recipients), default=None)
            return self._refused(job, code, to)
        except aiosmtplib.SMTPResponseException as exc:
            return self._refused(job, exc.code, to)
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning(
                "e-mail %s to %s: no SMTP conversation (%s)",
                job.notification.id,
                to,
                type(exc).__name__,
            )
            return Attempt(Verdict.RETRY, reason=REASON_SMTP_UNAVAILABLE)
        log.info("e-mail %s to %s accepted by the SMTP server", job.notification.id, to)
        message_id = str(msg["Message-ID"])
        return Attempt(
            Verdict.ACCEPTED,
            provider_id=message_id if len(message_id) <= 64 else None,
            provider_status="sent",
        )

    @staticmethod
    def _refused(job: Job, code: int | None, to: str) -> Attempt:
        verdict = smtp_verdict(code)
        log.warning("e-mail %s to %s refused: SMTP %s", job.notification.id, to, code)
        reason = REASON_SMTP_REJECTED if verdict is Verdict.REJECTED else REASON_SMTP_UNAVAILABLE
        return Attempt(verdict, error_code=str(code) if code else None, reason=reason)
