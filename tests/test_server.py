"""The uvicorn config Folyam runs with."""

from __future__ import annotations

import gc

from litestar import Litestar

from folyam.server import COLLECTOR_THRESHOLDS, FolyamHttpProtocol, settle_collector, uvicorn_config
from folyam.settings import Settings


def test_the_config_carries_the_settings_and_trusts_no_proxy_by_default() -> None:
    settings = Settings(host="0.0.0.0", port=8123, max_header_bytes=1000, header_timeout=2.5, send_timeout=7.0)
    config = uvicorn_config(Litestar([]), settings)
    config.load()

    assert (config.host, config.port) == ("0.0.0.0", 8123)
    assert config.proxy_headers is False
    assert config.server_header is False
    assert config.access_log is False
    assert config.timeout_graceful_shutdown == 5
    protocol = config.http_protocol_class
    assert issubclass(protocol, FolyamHttpProtocol)
    assert (protocol.max_header_bytes, protocol.header_timeout, protocol.send_timeout) == (1000, 2.5, 7.0)


def test_proxy_headers_are_believed_only_from_the_named_proxies() -> None:
    config = uvicorn_config(Litestar([]), Settings(forwarded_allow_ips="10.0.0.1,10.0.0.2"))

    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == "10.0.0.1,10.0.0.2"


def test_overrides_win() -> None:
    config = uvicorn_config(Litestar([]), Settings(), timeout_graceful_shutdown=2, port=0)

    assert (config.timeout_graceful_shutdown, config.port) == (2, 0)


def test_once_started_the_app_is_frozen_and_collections_come_far_apart() -> None:
    thresholds = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        assert COLLECTOR_THRESHOLDS[0] > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
