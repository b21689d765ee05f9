"""The email channel: SMTP submission with aiosmtplib.

Builds a proper MIME message (multipart/alternative text + HTML, UTF-8, encoded subject,
Date, a Message-ID derived from the delivery's idempotency key so that a downstream
system can recognise a resend, ``Auto-Submitted: auto-generated`` so that auto-responders
stay quiet) and submits it with plain SMTP, STARTTLS or implicit TLS, with optional AUTH.

Connections are reused (:mod:`adapters.smtp_pool`): up to ``pool_size`` idle connections
wait ``pool_idle_s`` for the next message, which then costs MAIL, RCPT and DATA only.
A pooled connection the server closed meanwhile (or answered 421 on) is replaced by a
fresh one for the same message, once; ``pool_size: 0`` opens one connection per message.

A fan-out sends the same message to thousands of addresses: the MIME body and the
headers they share are built and serialised once per (sender, subject, text, HTML,
severity, locale) and kept in a small cache (:class:`_Bodies`); each message then only
prepends its own ``To``, ``Date`` and ``Message-ID`` (ASCII addresses; any other is
built in full). The cached body is serialised 7-bit clean (non-ASCII parts base64 or
quoted-printable encoded), so it suits every server, 8BITMIME or not.

Errors are classified for the dispatcher: 5xx replies (recipient refused, message
rejected) are permanent; 4xx replies, refused/reset connections and timeouts are
retryable; authentication and TLS verification failures are permanent (misconfiguration:
retrying cannot help) and logged as errors.
"""

from __future__ import annotations

import email.policy
import hashlib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime
from typing import Literal

import aiosmtplib
import structlog

from adapters.smtp_pool import SmtpPool
from router.errors import DeliveryError, excerpt
from router.masking import mask_email
from router.models import OutboundMessage, Receipt

__all__ = ["SmtpChannel", "SmtpSecurity", "SmtpSettings", "build_email"]

SmtpSecurity = Literal["none", "starttls", "tls"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to submit email."""

    host: str = "127.0.0.1"
    port: int = 25
    security: SmtpSecurity = "none"
    username: str | None = None
    password: str | None = None
    from_address: str = "tocsin@localhost"
    timeout_s: float = 10.0
    ca_file: str | None = None  # PEM bundle to trust (private CA); default: system CAs
    helo_name: str | None = None  # name sent in EHLO; default: the local host name
    pool_size: int = 4  # idle connections kept for the next message (0: none)
    pool_idle_s: float = 30.0  # how long an idle connection is kept

    def __post_init__(self) -> None:
        if self.security not in ("none", "starttls", "tls"):
            raise ValueError(f"smtp security must be none|starttls|tls, not {self.security!r}")
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp username and password must be given together")
        if self.timeout_s <= 0:
            raise ValueError("smtp timeout_s must be > 0")
        if self.pool_size < 0 or self.pool_idle_s <= 0:
            raise ValueError("smtp pool_size must be >= 0 and pool_idle_s > 0")


def message_id(idempotency_key: str, from_address: str) -> str:
    """A Message-ID that is the same for every resend of one delivery."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    domain = from_address.rpartition("@")[2] or "tocsin.invalid"
    return f"<{digest}.tocsin@{domain}>"


def build_email(message: OutboundMessage, from_address: str) -> EmailMessage:
    """The MIME message for one outbound email (UTF-8, text + optional HTML)."""
    mail = EmailMessage()
    mail["From"] = from_address
    mail["To"] = message.recipient
    mail["Subject"] = message.message.subject
    mail["Date"] = format_datetime(localtime())
    mail["Message-ID"] = message_id(message.idempotency_key, from_address)
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Tocsin-Severity"] = message.severity
    mail["Content-Language"] = message.locale
    mail.set_content(message.message.text, charset="utf-8")
    if message.message.html is not None:
        mail.add_alternative(message.message.html, subtype="html", charset="utf-8")
    return mail


def _shared_body(message: OutboundMessage, from_address: str) -> bytes:
    """What every copy of ``message`` shares, serialised (the header block and body
    without ``To``, ``Date`` and ``Message-ID``), 7-bit clean with CRLF line ends."""
    mail = EmailMessage()
    mail["From"] = from_address
    mail["Subject"] = message.message.subject
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Tocsin-Severity"] = message.severity
    mail["Content-Language"] = message.locale
    mail.set_content(message.message.text, charset="utf-8")
    if message.message.html is not None:
        mail.add_alternative(message.message.html, subtype="html", charset="utf-8")
    return mail.as_bytes(policy=email.policy.SMTP.clone(cte_type="7bit"))


class _Bodies:
    """A bounded cache of :func:`_shared_body` (cleared when full)."""

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str, str, str | None, str, str], bytes] = {}

    def get(self, message: OutboundMessage, from_address: str) -> bytes:
        rendered = message.message
        key = (from_address, rendered.subject, rendered.text, rendered.html,
               message.severity, message.locale)
        body = self._entries.get(key)
        if body is None:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            body = self._entries[key] = _shared_body(message, from_address)
        return body


def _plain_address(address: str) -> bool:
    """An address that goes into a header as it is (ASCII, no line break, no comma)."""
    return address.isascii() and not any(c in address for c in "\r\n,;<>\"()")


class SmtpChannel:
    """:class:`~router.channel.Channel` "email" over SMTP."""

    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        # Validate the sender address once, at wiring time, not at the first alert.
        Address(addr_spec=settings.from_address)
        self._tls_context: ssl.SSLContext | None = None
        if settings.security != "none":
            # Loaded once here (startup), never in the event loop's hot path.
            self._tls_context = ssl.create_default_context(cafile=settings.ca_file)
        self._pool = SmtpPool(self._client, max_idle=settings.pool_size,
                              idle_s=settings.pool_idle_s)
        self._bodies = _Bodies()
        self._fast_sender = _plain_address(settings.from_address)

    async def send(self, message: OutboundMessage) -> Receipt:
        """Submit one email; raise DeliveryError (classified) when it is not accepted."""
        s = self._settings
        mail: EmailMessage | bytes
        mid = message_id(message.idempotency_key, s.from_address)
        if self._fast_sender and _plain_address(message.recipient):
            head = (f"To: {message.recipient}\r\nDate: {format_datetime(localtime())}\r\n"
                    f"Message-ID: {mid}\r\n")
            mail = head.encode("ascii") + self._bodies.get(message, s.from_address)
        else:
            mail = build_email(message, s.from_address)
        try:
            reply = await self._submit(mail, message.recipient)
        except aiosmtplib.SMTPException as exc:
            raise self._classify(exc, message) from exc
        except ssl.SSLError as exc:
            raise self._misconfigured(f"TLS failure talking to {s.host}:{s.port}: {exc}",
                                      message) from exc
        except OSError as exc:
            raise DeliveryError(
                f"cannot reach SMTP server {s.host}:{s.port}: {exc}", retryable=True
            ) from exc
        return Receipt(provider_id=mid, detail=reply)

    async def _submit(self, mail: EmailMessage | bytes, recipient: str) -> str:
        """Send on a pooled connection; on a stale one, once more on a fresh one."""
        sender = self._settings.from_address
        while True:
            client, reused = await self._pool.acquire()
            try:
                if isinstance(mail, bytes):  # serialised 7-bit clean: no BODY option
                    _errors, reply = await client.sendmail(sender, [recipient], mail)
                else:
                    _errors, reply = await client.send_message(mail, sender=sender,
                                                               recipients=[recipient])
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPResponseException,
                    ConnectionError) as exc:
                self._pool.discard(client)
                if reused and _stale(exc):
                    continue  # the server dropped the idle connection: use a new one
                raise
            except BaseException:
                # Anything else (refused recipient, timeout, cancellation mid-command)
                # leaves the session in an unknown state: close it, never pool it, and
                # let the caller see the error unchanged.
                self._pool.discard(client)
                raise
            await self._pool.release(client)
            return reply

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            local_hostname=s.helo_name,
            timeout=s.timeout_s,
            use_tls=s.security == "tls",
            start_tls=True if s.security == "starttls" else False,
            tls_context=self._tls_context,
        )

    async def close(self) -> None:
        """Close the idle pooled connections (QUIT)."""
        await self._pool.close()

    def _classify(self, exc: aiosmtplib.SMTPException, message: OutboundMessage) -> DeliveryError:
        s = self._settings
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {excerpt(r.message)}" for r in exc.recipients)
            retryable = bool(codes) and all(400 <= c < 500 for c in codes)
            return DeliveryError(f"recipient refused: {detail}", retryable=retryable)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            if 400 <= exc.code < 500:
                return DeliveryError(f"SMTP authentication temporarily failed: {exc.code} "
                                     f"{excerpt(exc.message)}", retryable=True)
            return self._misconfigured(
                f"SMTP authentication failed for {s.username!r} at {s.host}:{s.port}: "
                f"{exc.code} {excerpt(exc.message)}", message)
        # aiosmtplib raises a bare SMTPException when the server lacks STARTTLS or AUTH
        # that the settings require; its message is the only way to tell.
        missing_extension = "STARTTLS" in str(exc) or "AUTH extension" in str(exc)
        if isinstance(exc, aiosmtplib.SMTPNotSupported) or missing_extension:
            return self._misconfigured(
                f"SMTP server {s.host}:{s.port} does not support what the settings "
                f"require (security={s.security}, auth={s.username is not None}): {exc}",
                message)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            what = "sender refused" if isinstance(exc, aiosmtplib.SMTPSenderRefused) else "SMTP"
            text = f"{what}: {exc.code} {excerpt(exc.message)}"
            if 500 <= exc.code < 600:
                return DeliveryError(text, retryable=False)
            return DeliveryError(text, retryable=True)
        if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            return self._misconfigured(
                f"TLS certificate of {s.host}:{s.port} not trusted: {exc.__cause__}", message)
        # Timeouts, disconnects, connect errors: transient by nature.
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            text = f"SMTP server {s.host}:{s.port} timed out: {exc}"
        elif isinstance(exc, aiosmtplib.SMTPConnectError):
            text = f"cannot reach SMTP server {s.host}:{s.port}: {exc}"
        elif isinstance(exc, aiosmtplib.SMTPServerDisconnected):
            text = f"SMTP server {s.host}:{s.port} closed the connection: {exc}"
        else:
            text = f"SMTP {type(exc).__name__}: {exc}"
        return DeliveryError(text, retryable=True)

    def _misconfigured(self, text: str, message: OutboundMessage) -> DeliveryError:
        _log.error(
            "smtp.misconfigured",
            error=text,
            recipient=mask_email(message.recipient),
            delivery_id=message.delivery_id,
        )
        return DeliveryError(text, retryable=False)


def _stale(exc: BaseException) -> bool:
    """A failure that means "this connection is gone", not "this message is refused"."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421  # service closing the transmission channel
    return True
