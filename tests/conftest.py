"""Shared fixtures. Expensive resources are session-scoped and loaded lazily."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from noteward.settings import shared_data_dir

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = shared_data_dir()
PASSPHRASE = "correct horse battery staple 7!"

# Property-based tests (tests/*/test_properties.py): `ci` when CI is set, else `dev`;
# HYPOTHESIS_PROFILE picks another. No deadline: the hang guard is pytest-timeout, never
# a clock. No example database: nothing is written into the checkout (a failure prints
# its example and a reproduction blob). Function-scoped fixtures are allowed because the
# autouse `_isolated_dirs` only sets environment variables, the same for every example.
_PROFILE = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
hypothesis_settings.register_profile("ci", max_examples=25, **_PROFILE)
hypothesis_settings.register_profile("dev", max_examples=10, **_PROFILE)
hypothesis_settings.register_profile("thorough", max_examples=1000, **_PROFILE)  # by hand, before a release
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def require_shared(*parts: str) -> Path:
    """Path under ../shared/data; skip (or fail under NOTEWARD_REQUIRE_DATA=1) when absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        msg = f"shared data not found: {path}"
        if os.environ.get("NOTEWARD_REQUIRE_DATA") == "1":
            pytest.fail(msg + " (NOTEWARD_REQUIRE_DATA=1 forbids skipping)")
        pytest.skip(msg)
    return path


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real data, config or default vault from a test."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("NOTEWARD_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("NOTEWARD_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("NOTEWARD_POLICY_FILE", str(base / "policy.json"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("NOTEWARD_VAULT", raising=False)
    monkeypatch.delenv("NOTEWARD_PASSPHRASE", raising=False)


@pytest.fixture
def synthea_dir() -> Path:
    return require_shared("synthea_fhir")


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "vault" / "test.nwv"


@pytest.fixture
def vault(vault_path: Path) -> Iterator[object]:
    from noteward.store.vault import Vault

    v = Vault.create(vault_path, PASSPHRASE, busy_timeout_ms=2000)
    yield v
    v.close()
