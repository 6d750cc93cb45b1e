"""The alerts, tasks and pool settings of include/usdirect.yaml: defaults, and typos caught at load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO
from usdirect.settings.config import ConfigError, EmailChannel, HttpChannel, load_config


def write(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load((REPO / "include" / "usdirect.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "usdirect.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_config_alerts_through_the_usdirect_alerts_webhook() -> None:
    cfg = load_config(REPO / "include" / "usdirect.yaml")
    assert cfg.alerts.channels == (HttpChannel(type="http", conn_id="usdirect_alerts"),)
    assert (cfg.tasks.retries, cfg.tasks.retry_delay_seconds) == (2, 60)
    assert [(cfg.pool(a), a.pool_slots) for a in cfg.accounts] == [("usdirect_main", 3)]


def test_channels_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path, alerts={"channels": [{"type": "email", "to": ["ops@example.com"]}]})
    assert load_config(path).alerts.channels == (EmailChannel(type="email", to=("ops@example.com",)),)


@pytest.mark.parametrize(
    ("alerts", "words"),
    [
        ({"channels": [{"type": "pager", "conn_id": "x"}]}, "alerts.channels.0"),
        ({"channels": [{"type": "email"}]}, "alerts.channels.0.email.to"),
        ({"channels": [{"type": "http", "url": "http://x"}]}, "alerts.channels.0.http.url"),
        ({"on_failur": True}, "alerts.on_failur"),
    ],
)
def test_alert_typos_fail_at_load_naming_the_key(tmp_path: Path, alerts: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config(write(tmp_path, alerts=alerts))
