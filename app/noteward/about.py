"""What Noteward is and what it bundles: the ``--version`` lines and the licence notices.

Shared by the command line (``noteward --version``) and the desktop client's Help > About,
so neither imports the other. The notices are data (``resources/licenses/notices.yaml``);
versions are read from the installed packages, never typed into that file.
"""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from noteward import __version__
from noteward.core.errors import NotewardError
from noteward.settings import resources_dir


def notices_path() -> Path:
    """The licence notices file shipped in the package's resources."""
    return resources_dir() / "licenses" / "notices.yaml"


@dataclass(frozen=True)
class Notice:
    """One bundled component: its licence, attribution and the installed versions of the
    PyPI distributions it comes in (None where a distribution is not installed)."""

    name: str
    kind: str
    licence: str
    url: str
    notice: str
    distributions: tuple[str, ...] = ()
    versions: dict[str, str | None] = field(default_factory=dict)


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_notices(path: Path | None = None) -> list[Notice]:
    """The notices, in file order, each with its distributions' installed versions."""
    raw: Any = yaml.safe_load((path or notices_path()).read_text(encoding="utf-8"))
    notices = []
    for entry in raw:
        dists = tuple(str(d) for d in entry.get("distributions") or ())
        notices.append(Notice(
            name=str(entry["name"]), kind=str(entry.get("kind", "")),
            licence=str(entry["licence"]), url=str(entry.get("url", "")),
            notice=str(entry.get("notice", "")).strip(), distributions=dists,
            versions={d: _installed(d) for d in dists},
        ))
    return notices


def version_lines() -> list[str]:
    """What ``noteward --version`` prints: version, Python, default model, notices file."""
    from noteward.llm.manifest import describe_default_model

    lines = [
        f"noteward {__version__}",
        f"Python {platform.python_version()} ({platform.python_implementation()}, "
        f"{platform.system()} {platform.machine()})",
    ]
    try:
        lines.append(describe_default_model())
    except NotewardError as exc:
        lines.append(f"Default model: unavailable ({exc})")
    lines.append(f"Licence notices: {notices_path()} (Help > About Noteward in the app)")
    return lines
