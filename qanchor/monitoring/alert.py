"""Drift alerts by e-mail: SMTP settings, sending, and no repeat of an ongoing drift.

    settings = SmtpSettings.from_env()          # QANCHOR_SMTP_HOST, _PORT, _USER, _PASSWORD, _FROM, _TO
    alert_on_drift(summary, settings, "runs/drift/alert_state.json", cooldown_hours=72)

In Airflow the settings come from the connection ``qanchor_smtp`` instead (see
``dags/qanchor_drift.py``); secrets are never part of the code or the config files.

De-duplication: ``alert_state.json`` keeps the signature (hash of the drifted items) of the last
alert and when it was sent. The same drift is re-sent only after ``cooldown_hours``; a change in
what drifted alerts at once; a run without drift sends nothing and clears the state, so a drift
that comes back later is news again.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qanchor.env import read_env
from qanchor.errors import QAnchorError

if TYPE_CHECKING:
    from qanchor.monitoring.links import LinkSettings

# Environment variable -> SmtpSettings field (read by qanchor.env.read_env).
ENV = {
    "QANCHOR_SMTP_HOST": "host",
    "QANCHOR_SMTP_PORT": "port",
    "QANCHOR_SMTP_FROM": "sender",
    "QANCHOR_SMTP_TO": "recipients",
    "QANCHOR_SMTP_USER": "user",
    "QANCHOR_SMTP_PASSWORD": "password",
    "QANCHOR_SMTP_STARTTLS": "starttls",
    "QANCHOR_SMTP_SSL": "use_ssl",
}


@dataclass
class SmtpSettings:
    """Where and how to send alert e-mails.

    Attributes:
        host: SMTP server host.
        port: SMTP port (25 plain, 587 with ``starttls``, 465 with ``use_ssl``).
        sender: The From address.
        recipients: The To addresses.
        user: Login (None: no authentication).
        password: Password of ``user``.
        starttls: Upgrade the connection with STARTTLS before logging in.
        use_ssl: Connect with implicit TLS (SMTPS).
        timeout: Socket timeout in seconds.
    """

    host: str
    port: int = 25
    sender: str = "qanchor-drift@localhost"
    recipients: list[str] = field(default_factory=list)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 30.0

    @classmethod
    def from_env(cls, **overrides: Any) -> SmtpSettings | None:
        """Settings from the ``QANCHOR_SMTP_*`` variables (``ENV``), then ``overrides``; None
        without a host."""
        values = {**read_env(cls, ENV), **overrides}
        if not values.get("host"):
            return None
        return cls(**{**values, "recipients": _addresses(values.get("recipients", ""))})

    @classmethod
    def from_connection(
        cls,
        host: str,
        port: int | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
    ) -> SmtpSettings:
        """Settings from an Airflow connection's fields (extra: ``from``, ``to``, ``starttls``, ``ssl``)."""
        return cls(host=host, port=int(port or 25), sender=extra.get("from", cls.sender),
                   recipients=_addresses(extra.get("to", "")), user=login or None,
                   password=password or None, starttls=_flag(extra.get("starttls")),
                   use_ssl=_flag(extra.get("ssl")))  # fmt: skip


def airflow_smtp_settings(conn_id: str = "qanchor_smtp") -> SmtpSettings | None:
    """Inside an Airflow task: settings from the connection ``conn_id``, else from
    ``QANCHOR_SMTP_*`` (None: neither). Both DAGs' e-mails (drift alerts, gate rejections) use it."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        c = Connection.get(conn_id)
    except AirflowNotFoundException:
        return SmtpSettings.from_env()
    return SmtpSettings.from_connection(c.host, c.port, c.login, c.password, c.extra_dejson)


def smtp_from_flag(flag: str) -> SmtpSettings | None:
    """The CLI's ``--smtp``: ``env`` reads ``QANCHOR_SMTP_*``; ``HOST:PORT`` overrides the server."""
    if flag == "env":
        return SmtpSettings.from_env()
    host, _, port = flag.rpartition(":")
    if not host or not port.isdigit():
        raise QAnchorError(f"--smtp: expected none, env or HOST:PORT, got {flag!r}")
    return SmtpSettings.from_env(host=host, port=int(port))


def _addresses(value: str | list[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [a.strip() for a in items if a and a.strip()]


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def send_email(settings: SmtpSettings, subject: str, html: str, text: str) -> None:
    """Send one multipart (plain text + HTML) e-mail.

    Raises:
        QAnchorError: No recipient is configured.
        OSError / smtplib.SMTPException: The server cannot be reached or refuses the mail
            (let it propagate: the Airflow task fails and is retried).
    """
    if not settings.recipients:
        raise QAnchorError("no alert recipient: set QANCHOR_SMTP_TO or the connection's extra 'to'")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    smtp_cls = smtplib.SMTP_SSL if settings.use_ssl else smtplib.SMTP
    with smtp_cls(settings.host, settings.port, timeout=settings.timeout) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        smtp.send_message(msg)


def decide(
    summary: dict[str, Any], state: dict[str, Any] | None, cooldown_hours: float, now: datetime
) -> tuple[bool, str]:
    """Whether to send an alert for ``summary`` given the last alert's ``state``, and why."""
    if not summary["drift_detected"]:
        return False, "no drift"
    if not state or state.get("signature") != summary["signature"]:
        return True, "new drift" if not state else "drifted items changed"
    sent = datetime.fromisoformat(state["sent_at"])
    if now - sent >= timedelta(hours=cooldown_hours):
        return True, f"same drift, last alert over {cooldown_hours:g} h ago"
    return False, f"same drift already alerted at {state['sent_at']}"


def alert_on_drift(
    summary: dict[str, Any],
    settings: SmtpSettings | None,
    state_path: str | Path,
    cooldown_hours: float,
    now: datetime | None = None,
    retrain: bool | None = None,
    links: LinkSettings | None = None,
) -> dict[str, Any]:
    """Send the alert e-mail for a drift run unless nothing drifted or it was already sent.

    ``retrain`` says whether the run triggers ``qanchor_retrain`` (None: not run by Airflow), for
    the e-mail's next steps; ``links`` are the base URLs of its links (default: environment).

    Returns:
        ``{"sent": bool, "reason": str, "subject": str | None, "recipients": [...]}``.

    Raises:
        QAnchorError: Drift needs an alert but no SMTP settings are configured.
    """
    from qanchor.monitoring.mail import alert_message

    now = now or datetime.now(UTC)
    state_path = Path(state_path)
    state = read_state(state_path)
    send, reason = decide(summary, state, cooldown_hours, now)
    if not summary["drift_detected"]:
        if state:  # the drift is over: a recurrence later is a new alert
            write_state(state_path, None)
        return {"sent": False, "reason": reason, "subject": None, "recipients": []}
    if not send:
        return {"sent": False, "reason": reason, "subject": None, "recipients": []}
    if settings is None:
        raise QAnchorError(
            "drift detected but no SMTP settings: set QANCHOR_SMTP_HOST (or the Airflow connection)"
        )
    subj, html, text = alert_message(summary, links, retrain, state_path)
    send_email(settings, subj, html, text)
    write_state(state_path, {"signature": summary["signature"], "items": summary["drifted_items"],
                             "sent_at": now.isoformat(), "report": summary["reports"]["index"]})  # fmt: skip
    return {"sent": True, "reason": reason, "subject": subj, "recipients": settings.recipients}


def read_state(path: str | Path) -> dict[str, Any] | None:
    """The last alert (signature, items, sent_at) or None."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data or None


def write_state(path: str | Path, state: dict[str, Any] | None) -> None:
    """Replace the state file atomically (a crash leaves the old or the new one, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state or {}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
