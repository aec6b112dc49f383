"""Typed settings with a schema version, stored under platformdirs paths.

Order of precedence (highest first): site policy (locked keys, set by IT), environment
variables ``NOTEWARD_*``, the user's settings file, defaults. The site policy file is
``NOTEWARD_POLICY_FILE`` or ``/etc/noteward/policy.json``; keys it sets cannot be changed
by the user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "noteward"
_ROOT = Path(__file__).resolve().parents[2]  # the repository (or an installed bundle's root)


def resources_dir() -> Path:
    """resources/ (rules, prompts, styles): beside app/, or NOTEWARD_RESOURCES for an install."""
    env = os.environ.get("NOTEWARD_RESOURCES")
    return Path(env) if env else _ROOT / "resources"


def models_dir() -> Path:
    """models/ (manifest, cards, adapters): beside app/, or NOTEWARD_MODELS for an install."""
    env = os.environ.get("NOTEWARD_MODELS")
    return Path(env) if env else _ROOT / "models"
SCHEMA_VERSION = 1


def shared_data_dir() -> Path:
    """The shared corpora (``../shared/data`` beside the repository), or NOTEWARD_SHARED_DATA."""
    env = os.environ.get("NOTEWARD_SHARED_DATA")
    return Path(env) if env else _ROOT.parent / "shared" / "data"


def user_data_dir() -> Path:
    override = os.environ.get("NOTEWARD_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, False))


def user_config_dir() -> Path:
    override = os.environ.get("NOTEWARD_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME, False))


def default_vault_path() -> Path:
    return user_data_dir() / "vault.nwv"


def demo_vault_path() -> Path:
    return user_data_dir() / "demo" / "demo.nwv"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTEWARD_", extra="ignore")

    schema_version: int = SCHEMA_VERSION
    vault: Path | None = None
    model: str = ""  # model id from the manifest; empty means the manifest default
    threads: int = Field(default=0, ge=0)  # 0: choose from the machine's cores
    autolock_minutes: int = Field(default=10, ge=1, le=480)
    show_unsupported: bool = False  # unsupported sentences hidden until asked for (one click)
    busy_timeout_ms: int = Field(default=5000, ge=100)
    text_zoom_percent: int = Field(default=100, ge=50, le=300)  # note and summary text (Ctrl+Plus)
    # "Recent findings" covers this many months back from the newest note
    summary_recent_months: int = Field(default=12, ge=1, le=1200)
    # the whole summary's length cap, in sentences (the top line included)
    summary_max_sentences: int = Field(default=15, ge=3, le=200)

    def resolved_threads(self) -> int:
        if self.threads:
            return self.threads
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def settings_file() -> Path:
    return user_config_dir() / "settings.json"


def policy_file() -> Path:
    return Path(os.environ.get("NOTEWARD_POLICY_FILE", "/etc/noteward/policy.json"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def locked_keys() -> set[str]:
    return set(_read_json(policy_file()).keys())


def load_settings() -> Settings:
    """Merge defaults, the user's file, the environment and the site policy."""
    user = {k: v for k, v in _read_json(settings_file()).items() if k in Settings.model_fields}
    env = Settings()  # reads NOTEWARD_* only
    merged = {**user, **env.model_dump(exclude_unset=True)}
    policy = {k: v for k, v in _read_json(policy_file()).items() if k in Settings.model_fields}
    merged.update(policy)
    return Settings.model_validate(merged) if merged else env


def save_settings(settings: Settings) -> None:
    """Write the user's settings; keys locked by the site policy are not written."""
    path = settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    locked = locked_keys()
    data = {k: v for k, v in settings.model_dump(mode="json").items() if k not in locked}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)
