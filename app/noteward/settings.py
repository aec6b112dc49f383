"""Typed settings with a schema version, stored under platformdirs paths.

Order of precedence (highest first): site policy (locked keys, set by IT), environment
variables ``NOTEWARD_*``, the user's settings file, defaults. The site policy file is
``NOTEWARD_POLICY_FILE`` or ``/etc/noteward/policy.json``; keys it sets cannot be changed
by the user.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "noteward"
log = logging.getLogger(__name__)
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


class PolicyError(ValueError):
    """The site policy file is unreadable, malformed or holds a value Noteward cannot use.

    Raised at start-up (CLI and desktop app) so a mistake by IT stops the program with a
    message naming the file and the key, instead of running on defaults nobody chose.
    ``exit_code`` matches a usage error's.
    """

    exit_code = 2


# Keys IT cannot lock: the file format's own version is not a setting.
_NOT_LOCKABLE = {"schema_version"}


def policy_keys() -> set[str]:
    """The settings a site policy may lock (every Settings field but the schema version)."""
    return set(Settings.model_fields) - _NOT_LOCKABLE


def allowed_values(key: str) -> str:
    """What a setting accepts, in words, from its type and bounds (for messages and docs)."""
    field = Settings.model_fields[key]
    lo = hi = None
    for meta in field.metadata:
        lo = getattr(meta, "ge", lo)
        hi = getattr(meta, "le", hi)
    ann = field.annotation
    if ann is bool:
        return "true or false"
    if ann is int:
        if lo is not None and hi is not None:
            return f"an integer from {lo} to {hi}"
        if lo is not None:
            return f"an integer of at least {lo}"
        return "an integer"
    if ann is str:
        return "a string"
    if ann == Path | None:
        return "a path (string) or null"
    return str(ann)


def _adapter(key: str) -> TypeAdapter[Any]:
    """A validator for one setting: its type with its bounds."""
    field = Settings.model_fields[key]
    hint: Any = field.annotation
    if field.metadata:
        hint = Annotated[hint, *field.metadata]
    return TypeAdapter(hint)


def _check_policy_value(path: Path, key: str, value: Any) -> Any:
    adapter = _adapter(key)
    try:
        # strict: JSON `true` is not the integer 1, and "5" is not 5
        return adapter.validate_json(json.dumps(value), strict=True)
    except ValidationError:
        raise PolicyError(
            f"site policy {path}: key '{key}' has the value {json.dumps(value)[:40]}, which is "
            f"not allowed; allowed: {allowed_values(key)}. Ask IT to correct the file."
        ) from None


def read_policy(path: Path | None = None) -> dict[str, Any]:
    """The site policy's locked settings, validated; {} when there is no policy file.

    Raises PolicyError for a file that cannot be read, is not a JSON object, names a key that
    is not a lockable setting, or holds a value of the wrong type or out of range.
    """
    path = policy_file() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise PolicyError(
            f"site policy {path} cannot be read ({reason}); it must be a readable UTF-8 JSON "
            "file (for example mode 644, owned by root). Ask IT to fix it."
        ) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        pos = (f" (line {exc.lineno} column {exc.colno}: {exc.msg})"
               if isinstance(exc, json.JSONDecodeError) else "")
        raise PolicyError(
            f"site policy {path} is not valid JSON{pos}; it must be one JSON object of "
            "setting: value pairs. Ask IT to correct the file."
        ) from None
    if not isinstance(data, dict):
        raise PolicyError(
            f"site policy {path} must hold a JSON object of setting: value pairs, not a "
            f"{type(data).__name__}. Ask IT to correct the file."
        )
    allowed = sorted(policy_keys())
    for key in data:
        if key not in policy_keys():
            raise PolicyError(
                f"site policy {path}: unknown key '{key}'; allowed keys: {', '.join(allowed)}. "
                "Ask IT to correct the file."
            )
    return {key: _check_policy_value(path, key, value) for key, value in data.items()}


def validate_policy() -> None:
    """Read and check the site policy and the ``NOTEWARD_*`` settings at start-up; raises
    PolicyError naming the file or the variable and what it accepts (see read_policy)."""
    read_policy()
    try:
        Settings()  # reads NOTEWARD_* only
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err.get("loc") else ""
        if key not in Settings.model_fields:
            raise PolicyError(f"a NOTEWARD_* setting is not valid: {err.get('msg', '')}.") from None
        var = "NOTEWARD_" + key.upper()
        raise PolicyError(
            f"environment variable {var} has the value {os.environ.get(var, '')!r}, which is "
            f"not allowed; allowed: {allowed_values(key)}. Correct or unset it."
        ) from None


def _read_user_json(path: Path) -> dict[str, Any]:
    """The user's settings file, read leniently: a missing, unreadable or malformed file is
    treated as empty, and the user can rewrite it from the Settings dialog."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # (an unreadable folder makes even exists() raise: never let that stop the program)
        log.warning("settings file %s is unreadable or not JSON; using the defaults", path)
        return {}
    return data if isinstance(data, dict) else {}


def _user_settings(path: Path) -> dict[str, Any]:
    """Known keys with acceptable values from the user's file; others are dropped with a
    warning naming the key (the values are not logged)."""
    kept: dict[str, Any] = {}
    for key, value in _read_user_json(path).items():
        if key not in policy_keys():
            continue
        try:
            _adapter(key).validate_python(value)
        except ValidationError:
            log.warning("settings file %s: ignoring key '%s' (allowed: %s)", path, key,
                        allowed_values(key))
            continue
        kept[key] = value
    return kept


def locked_keys() -> set[str]:
    return set(read_policy())


def load_settings() -> Settings:
    """Merge defaults, the user's file, the environment and the site policy."""
    user = _user_settings(settings_file())
    env = Settings()  # reads NOTEWARD_* only
    merged = {**user, **env.model_dump(exclude_unset=True)}
    merged.update(read_policy())
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
