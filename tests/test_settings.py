from __future__ import annotations

import pytest

from folyam.settings import InvalidSetting, Settings


def test_no_key_and_no_base_url_means_the_demo_model() -> None:
    settings = Settings.from_env({})
    assert settings.provider == "demo" and settings.is_demo
    assert settings.model == "folyam-demo"


@pytest.mark.parametrize("environ", [{"OPENAI_API_KEY": "sk-1"}, {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}])
def test_a_key_or_base_url_selects_the_openai_provider(environ: dict[str, str]) -> None:
    settings = Settings.from_env(environ)
    assert settings.provider == "openai"
    assert settings.model == "gpt-4o-mini"


def test_cli_flags_override_the_environment() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "k", "FOLYAM_MODEL": "a"}, model="b", port=9000, host=None)
    assert (settings.model, settings.port, settings.host) == ("b", 9000, "127.0.0.1")


def test_numbers_are_read_and_checked() -> None:
    settings = Settings.from_env({"FOLYAM_FLUSH_INTERVAL": "0.05", "FOLYAM_MAX_QUERY_CHARS": "100"})
    assert (settings.flush_interval, settings.max_query_chars) == (0.05, 100)
    with pytest.raises(InvalidSetting, match=r"FOLYAM_MAX_QUERY_CHARS='lots' is not a valid int"):
        Settings.from_env({"FOLYAM_MAX_QUERY_CHARS": "lots"})
    with pytest.raises(InvalidSetting, match="must not be negative"):
        Settings.from_env({"FOLYAM_FLUSH_INTERVAL": "-1"})


def test_limits_that_zero_would_break_must_be_positive() -> None:
    with pytest.raises(InvalidSetting, match="FOLYAM_SEND_TIMEOUT='0' must be more than 0"):
        Settings.from_env({"FOLYAM_SEND_TIMEOUT": "0"})
    assert Settings.from_env({"FOLYAM_FORWARDED_ALLOW_IPS": " 10.0.0.1,10.0.0.2 "}).forwarded_allow_ips == (
        "10.0.0.1,10.0.0.2"
    )
    assert Settings.from_env({}).forwarded_allow_ips is None


def test_scale_out_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "FOLYAM_DATA_DIR": "/srv/folyam",
            "FOLYAM_DATABASE_URL": "postgresql://u:p@db/f",
            "FOLYAM_REDIS_URL": "redis://r/0",
        },
        workers=4,
    )
    assert (str(settings.data_dir), settings.workers, settings.shared) == ("/srv/folyam", 4, True)
    assert settings.store_url == "postgresql://u:p@db/f"
    assert Settings.from_env({"FOLYAM_DATA_DIR": "/srv/folyam"}).store_url == "sqlite:////srv/folyam/folyam.db"
    with pytest.raises(InvalidSetting, match="2 worker processes need FOLYAM_REDIS_URL"):
        Settings.from_env({}, workers=2)
