"""Settings come from FIELDSYNC_* variables and fail with one line naming the variable."""

from __future__ import annotations

import pytest

from fieldsync.kit.settings import LogFormat, SettingsError, load_settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIELDSYNC_HTTP_PORT", raising=False)
    settings = load_settings()
    assert settings.http_port == 8000
    assert settings.http_host == "127.0.0.1"
    assert settings.database_url("api") is None


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSYNC_HTTP_PORT", "9001")
    monkeypatch.setenv("FIELDSYNC_API_DATABASE_URL", "postgresql://u@db:5432/api")
    monkeypatch.setenv("FIELDSYNC_NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("FIELDSYNC_LOG_FORMAT", "console")
    settings = load_settings()
    assert settings.http_port == 9001
    assert settings.database_url("api") == "postgresql://u@db:5432/api"
    assert str(settings.nats_url) == "nats://nats:4222"
    assert settings.log_format is LogFormat.CONSOLE


@pytest.mark.parametrize(
    ("variable", "value", "mentions"),
    [
        ("FIELDSYNC_HTTP_PORT", "abc", "valid integer"),
        ("FIELDSYNC_HTTP_PORT", "70000", "less than or equal to 65535"),
        ("FIELDSYNC_NATS_URL", "http://nats:4222", "URL scheme"),
        ("FIELDSYNC_API_DATABASE_URL", "mysql://db/api", "scheme"),
        ("FIELDSYNC_LOG_LEVEL", "loud", "must be one of"),
        ("FIELDSYNC_LOG_FORMAT", "xml", "json"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, mentions: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"invalid configuration: {variable}: ")
    assert mentions in message
    assert repr(value) in message
