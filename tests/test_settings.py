"""Settings: where resources, models and shared data come from; IT policy locks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noteward import settings


@pytest.mark.parametrize(
    "func, env, default_tail",
    [
        (settings.resources_dir, "NOTEWARD_RESOURCES", ("resources",)),
        (settings.models_dir, "NOTEWARD_MODELS", ("models",)),
        (settings.shared_data_dir, "NOTEWARD_SHARED_DATA", ("shared", "data")),
    ],
)
def test_locations_follow_env(func, env, default_tail, tmp_path, monkeypatch):
    monkeypatch.delenv(env, raising=False)
    assert func().parts[-len(default_tail):] == default_tail
    monkeypatch.setenv(env, str(tmp_path))
    assert func() == tmp_path


def test_policy_locks_a_setting(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("NOTEWARD_AUTOLOCK_MINUTES", "30")
    assert settings.load_settings().autolock_minutes == 30
    policy = Path(settings.policy_file())
    policy.write_text(json.dumps({"autolock_minutes": 5}))
    assert settings.load_settings().autolock_minutes == 5
    s = settings.load_settings()
    s.show_unsupported = False
    settings.save_settings(s)
    saved = json.loads(settings.settings_file().read_text())
    assert "autolock_minutes" not in saved and saved["show_unsupported"] is False
