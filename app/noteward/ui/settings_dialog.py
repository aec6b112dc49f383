"""Settings: model, threads, auto-lock minutes, unsupported sentences, vault location.

Keys the site policy (IT) locks are shown but disabled, with a tooltip saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from noteward.settings import Settings, default_vault_path, locked_keys

LOCKED_TIP = "Set by your IT department's site policy; it cannot be changed here."


def model_choices() -> list[tuple[str, str]]:
    """(id, label) for each model in the manifest; empty id means the manifest default."""
    try:
        from noteward.llm.manifest import load_manifest

        manifest = load_manifest()
    except Exception:  # noqa: BLE001 - a broken manifest must not stop Settings opening
        return [("", "Default model (the manifest could not be read)")]
    choices: list[tuple[str, str]] = [("", f"Default ({manifest.default})")]
    for mid, entry in manifest.entries.items():
        raw = entry.raw
        label = str(raw.get("name") or mid)
        if raw.get("quantization") and str(raw["quantization"]) not in label:
            label += f" ({raw['quantization']})"
        choices.append((str(mid), label))
    return choices


class SettingsDialog(QDialog):
    """Edit the user's settings; returns the new Settings through :meth:`result_settings`."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.setMinimumWidth(560)
        self.settings = settings
        self.locked = locked_keys()

        self.model = QComboBox()
        self.model.setAccessibleName("Summary model")
        for mid, label in model_choices():
            self.model.addItem(label, mid)
        idx = self.model.findData(settings.model)
        if idx < 0 and settings.model:
            self.model.addItem(f"{settings.model} (not in the manifest)", settings.model)
            idx = self.model.count() - 1
        self.model.setCurrentIndex(max(idx, 0))

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.threads = QSpinBox()
        self.threads.setRange(0, max(64, cores))
        self.threads.setSpecialValueText(f"Automatic ({cores} cores)")
        self.threads.setValue(settings.threads)
        self.threads.setAccessibleName("Model threads")

        self.autolock = QSpinBox()
        self.autolock.setRange(1, 480)
        self.autolock.setSuffix(" minutes")
        self.autolock.setValue(settings.autolock_minutes)
        self.autolock.setAccessibleName("Auto-lock after idle minutes")

        self.show_unsupported = QCheckBox("Show sentences their sources do not support (marked)")
        self.show_unsupported.setChecked(settings.show_unsupported)
        self.show_unsupported.setAccessibleName("Show unsupported sentences")

        self.vault = QLineEdit(str(settings.vault or default_vault_path()))
        self.vault.setAccessibleName("Vault location")
        self.browse = QPushButton("Browse…")
        self.browse.setAccessibleName("Choose vault location")
        self.browse.clicked.connect(self._browse)
        vault_row = QHBoxLayout()
        vault_row.addWidget(self.vault, 1)
        vault_row.addWidget(self.browse)
        vault_widget = QWidget()
        vault_widget.setLayout(vault_row)
        vault_row.setContentsMargins(0, 0, 0, 0)

        form = QFormLayout()
        form.addRow("&Model:", self.model)
        form.addRow("&Threads:", self.threads)
        form.addRow("&Auto-lock after:", self.autolock)
        form.addRow("", self.show_unsupported)
        form.addRow("&Vault file:", vault_widget)

        self.fields: dict[str, list[QWidget]] = {
            "model": [self.model],
            "threads": [self.threads],
            "autolock_minutes": [self.autolock],
            "show_unsupported": [self.show_unsupported],
            "vault": [self.vault, self.browse],
        }
        for key, widgets in self.fields.items():
            if key in self.locked:
                for w in widgets:
                    w.setEnabled(False)
                    w.setToolTip(LOCKED_TIP)
                    w.setAccessibleDescription(LOCKED_TIP)

        note = QLabel("A new vault location or model takes effect the next time it is used.")
        note.setObjectName("Hint")
        note.setWordWrap(True)
        self.locked_note = QLabel(
            f"Some settings are locked by your IT department: {', '.join(sorted(self.locked & set(self.fields)))}."
        )
        self.locked_note.setObjectName("Hint")
        self.locked_note.setWordWrap(True)
        self.locked_note.setVisible(bool(self.locked & set(self.fields)))

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.locked_note)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Vault file", self.vault.text(), "Noteward vaults (*.nwv)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.vault.setText(path)

    def result_settings(self) -> Settings:
        """The edited settings (locked keys keep their policy values)."""
        data = self.settings.model_dump()
        edited = {
            "model": self.model.currentData() or "",
            "threads": self.threads.value(),
            "autolock_minutes": self.autolock.value(),
            "show_unsupported": self.show_unsupported.isChecked(),
            "vault": Path(self.vault.text()).expanduser() if self.vault.text().strip() else None,
        }
        for k, v in edited.items():
            if k not in self.locked:
                data[k] = v
        return Settings.model_validate(data)
