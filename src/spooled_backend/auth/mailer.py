"""Delivering email-login codes (CONTRACT §7.2, §17 EMAIL_PROVIDER / SMTP_*).

`smtp` (or any SMTP_HOST) sends through aiosmtplib; `console` writes the code to the server log
in development and staging only; production without a working provider refuses with a clear
503 instead of pretending to send. Other providers of the original (resend, sendgrid,
postmark) are HTTP APIs of hosted services and are not offered here: use SMTP.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr
from typing import Protocol

import aiosmtplib
import structlog

from spooled_backend.config import Settings
from spooled_backend.core.errors import ServiceUnavailable

log = structlog.get_logger(__name__)

SMTP_TIMEOUT_SECS = 15.0


class Mailer(Protocol):
    async def send(self, to: str, subject: str, text: str) -> None: ...


class SmtpMailer:
    """Plain SMTP submission; STARTTLS when the server offers it, implicit TLS on port 465."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.sender = formataddr((settings.email_from_name, settings.email_from_address))

    async def send(self, to: str, subject: str, text: str) -> None:
        """Raises ServiceUnavailable (503) when the SMTP server refuses or cannot be reached."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.port == 465,
                timeout=SMTP_TIMEOUT_SECS,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("email delivery failed", smtp_host=self.host, error=type(exc).__name__)
            raise ServiceUnavailable("Could not send the email; try again later") from None


class ConsoleMailer:
    """Development only: the message (with the code) goes to the server log."""

    async def send(self, to: str, subject: str, text: str) -> None:
        log.warning("email not sent (EMAIL_PROVIDER=console, development)", to=to,
                    subject=subject, body=text)


class RefusingMailer:
    """Production without a usable provider: every send is a clear 503."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def send(self, to: str, subject: str, text: str) -> None:
        raise ServiceUnavailable(self.reason, code="CONFIGURATION_ERROR")


def mailer_for(settings: Settings) -> Mailer:
    """The configured delivery path (see module docstring)."""
    provider = (settings.email_provider or "console").strip().lower()
    if provider == "smtp" or (settings.smtp_host and provider == "console"):
        if not settings.smtp_host:
            return RefusingMailer("Email delivery is misconfigured: EMAIL_PROVIDER=smtp needs SMTP_HOST")
        return SmtpMailer(settings)
    if provider == "console":
        if settings.is_production:
            return RefusingMailer(
                "Email login is not available: no email provider is configured "
                "(set EMAIL_PROVIDER=smtp and SMTP_HOST)"
            )
        return ConsoleMailer()
    return RefusingMailer(
        f"EMAIL_PROVIDER={provider} is not supported by this server; use EMAIL_PROVIDER=smtp"
    )
