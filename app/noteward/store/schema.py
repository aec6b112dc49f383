"""Vault schema and its versioned migrations.

Each migration is a list of SQL statements that moves ``PRAGMA user_version`` from its
index to index + 1. Migrations only ever add; a vault written by a newer Noteward
(user_version above ``SCHEMA_VERSION``) is refused rather than guessed at.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 0 -> 1: the initial schema
    [
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE patients (
            id TEXT PRIMARY KEY,
            source_id TEXT,
            name TEXT NOT NULL DEFAULT '',
            birth_date TEXT,
            sex TEXT,
            deceased INTEGER NOT NULL DEFAULT 0,
            deceased_date TEXT,
            details TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX patients_source ON patients(source_id) WHERE source_id IS NOT NULL",
        """CREATE TABLE encounters (
            id TEXT PRIMARY KEY,
            patient_id TEXT NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
            source_id TEXT,
            date TEXT,
            end_date TEXT,
            type TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE UNIQUE INDEX encounters_source ON encounters(source_id) WHERE source_id IS NOT NULL",
        "CREATE INDEX encounters_patient ON encounters(patient_id)",
        """CREATE TABLE notes (
            id TEXT PRIMARY KEY,
            patient_id TEXT NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
            encounter_id TEXT,
            source TEXT,
            source_id TEXT,
            author TEXT,
            date TEXT,
            type TEXT,
            text TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            near_duplicate_of TEXT,
            import_id TEXT,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX notes_patient_date ON notes(patient_id, date)",
        "CREATE INDEX notes_hash ON notes(patient_id, content_hash)",
        # Structured clinical facts (FHIR Condition, MedicationRequest, ...): key facts
        # for summaries and their evaluation.
        """CREATE TABLE facts (
            id INTEGER PRIMARY KEY,
            patient_id TEXT NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            source_id TEXT,
            code TEXT,
            display TEXT NOT NULL,
            status TEXT,
            date TEXT,
            end_date TEXT,
            encounter_id TEXT
        )""",
        "CREATE UNIQUE INDEX facts_source ON facts(kind, source_id) WHERE source_id IS NOT NULL",
        "CREATE INDEX facts_patient ON facts(patient_id, kind)",
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            note_id TEXT NOT NULL REFERENCES notes(id) ON DELETE CASCADE,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            section TEXT
        )""",
        "CREATE INDEX chunks_note ON chunks(note_id)",
        # Full-text index over chunk text; rowid = chunks.id. patient_id is stored
        # unindexed so searches can be scoped without a join.
        """CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, patient_id UNINDEXED, tokenize = 'porter unicode61'
        )""",
        "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('secure-delete', 1)",
        """CREATE TABLE embeddings (
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL
        )""",
        """CREATE TABLE summaries (
            id TEXT PRIMARY KEY,
            patient_id TEXT REFERENCES patients(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            model_id TEXT NOT NULL,
            model_sha256 TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            covers TEXT NOT NULL,
            body TEXT NOT NULL,
            approved_text TEXT,
            approved_at TEXT
        )""",
        "CREATE INDEX summaries_patient ON summaries(patient_id, created_at)",
        """CREATE TABLE imports (
            id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            report TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            action TEXT NOT NULL,
            object_ids TEXT NOT NULL,
            counts TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
    ],
    # -> +1: who approved a summary (the clinician's user name; NULL for approvals made
    # before it was recorded, shown as "approver not recorded")
    [
        "ALTER TABLE summaries ADD COLUMN approved_by TEXT",
    ],
    # -> +1: clinician accounts. Audit records name their user (NULL on records written
    # before: their digest is the old one, so they still verify); the user list mirrored
    # from the key file lives here, where only a key holder can change it and the audit
    # trail covers each change.
    [
        "ALTER TABLE audit ADD COLUMN user TEXT",
        """CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('clinician', 'admin')),
            added_at TEXT NOT NULL,
            removed_at TEXT
        )""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
