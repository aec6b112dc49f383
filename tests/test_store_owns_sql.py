"""Only ``noteward.store`` talks to the vault's tables: no SQL anywhere else.

Other packages call typed store functions (``store.notes``, ``store.chunks``,
``store.summaries``...), so a schema change touches one package. This scans the source
(not a grep: docstrings may describe a query) for SQL text, for calls of
``execute``/``executemany``/``executescript`` and for reaching into a vault's connection
(``.conn``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "app" / "noteward"
STORE = PACKAGE / "store"
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\bCREATE\s+(TEMP\s+|VIRTUAL\s+|UNIQUE\s+)*(TABLE|INDEX|VIEW|TRIGGER)\b|\bDROP\s+TABLE\b|\bPRAGMA\s+\w+"
    r"|\bBEGIN\s+IMMEDIATE\b|\bVACUUM\b"
)
DB_CALLS = {"execute", "executemany", "executescript"}


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def findings(path: Path) -> list[str]:
    """'file:line what' for every piece of SQL or connection access in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _docstrings(tree)
    rel = path.relative_to(REPO) if REPO in path.parents else path.name
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if SQL.search(node.value):
                out.append(f"{rel}:{node.lineno} SQL text {node.value[:60]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DB_CALLS:
            out.append(f"{rel}:{node.lineno} .{node.func.attr}() call")
        elif isinstance(node, ast.Attribute) and node.attr == "conn":
            out.append(f"{rel}:{node.lineno} reaches into a connection (.conn)")
    return out


def test_the_scan_finds_sql(tmp_path: Path):
    """The scanner itself: it must see each kind of leak (else the real test proves nothing)."""
    mod = tmp_path / "probe.py"
    mod.write_text(
        '"""SELECT x FROM docstring is fine."""\n'
        "def f(vault):\n"
        "    vault.conn.execute(f\"SELECT id FROM notes WHERE x = {1}\")\n"
        "    return 'INSERT INTO chunks(a) VALUES (1)'\n",
        encoding="utf-8",
    )
    found = findings(mod)
    kinds = sorted(f.split(" ", 1)[1].split(" ")[0] for f in found)
    assert kinds == [".execute()", "SQL", "SQL", "reaches"], found


def test_no_sql_outside_store():
    leaks = [
        f
        for path in sorted(PACKAGE.rglob("*.py"))
        if STORE not in path.parents
        for f in findings(path)
    ]
    assert leaks == [], "SQL outside noteward.store:\n" + "\n".join(leaks)
