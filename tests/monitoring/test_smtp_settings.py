"""Where SMTP settings come from: environment variables, an Airflow connection's fields, --smtp."""

from __future__ import annotations

import pytest

from qanchor.errors import QAnchorError
from qanchor.monitoring import alert
from qanchor.monitoring.alert import SmtpSettings, send_email, smtp_from_flag

ENV = {"QANCHOR_SMTP_HOST": "mail.internal", "QANCHOR_SMTP_PORT": "587", "QANCHOR_SMTP_USER": "bot",
       "QANCHOR_SMTP_PASSWORD": "s3", "QANCHOR_SMTP_FROM": "drift@x.org",
       "QANCHOR_SMTP_TO": "a@x.org, b@x.org", "QANCHOR_SMTP_STARTTLS": "true"}  # fmt: skip


@pytest.fixture
def smtp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly the variables of ``ENV`` set (none of the machine's QANCHOR_SMTP_*)."""
    for var in alert.ENV:
        monkeypatch.delenv(var, raising=False)
    for var, value in ENV.items():
        monkeypatch.setenv(var, value)


def test_settings_from_environment(smtp_env, monkeypatch: pytest.MonkeyPatch) -> None:
    s = SmtpSettings.from_env()
    assert (s.host, s.port, s.user, s.password, s.sender) == (
        "mail.internal",
        587,
        "bot",
        "s3",
        "drift@x.org",
    )
    assert s.recipients == ["a@x.org", "b@x.org"] and s.starttls and not s.use_ssl
    assert "s3" not in repr(s)  # the password never ends up in a log line
    monkeypatch.setenv("QANCHOR_SMTP_HOST", "")  # empty is unset
    assert SmtpSettings.from_env() is None


def test_settings_from_connection_fields() -> None:
    s = SmtpSettings.from_connection(
        "smtp.x.org", None, "", None, {"to": "oncall@x.org", "ssl": "1"}
    )
    assert (s.port, s.user, s.password, s.recipients, s.use_ssl) == (
        25,
        None,
        None,
        ["oncall@x.org"],
        True,
    )


def test_smtp_flag_overrides_only_the_server(smtp_env) -> None:
    s = smtp_from_flag("127.0.0.1:2525")
    assert (s.host, s.port, s.sender) == ("127.0.0.1", 2525, "drift@x.org")
    assert smtp_from_flag("env").host == "mail.internal"
    with pytest.raises(QAnchorError, match="HOST:PORT"):
        smtp_from_flag("mail.internal")


def test_sending_without_recipients_is_an_error() -> None:
    with pytest.raises(QAnchorError, match="recipient"):
        send_email(SmtpSettings("127.0.0.1", 1), "s", "<p>h</p>", "t")
