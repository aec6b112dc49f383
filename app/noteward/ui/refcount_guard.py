"""Work around a PySide6 6.12 reference-counting bug that crashes the app.

In PySide6 6.12.0 (the pinned version), every ``Signal.emit()`` and ``connect()`` made
from Python drops one reference to ``True`` that it never took (and some paths do the same
to ``None``). On CPython 3.11 these singletons are ordinary objects, so after enough
signals (a summary streams one per token) their count reaches zero and the interpreter
aborts with "Fatal Python error: bool_dealloc" (or "none_dealloc"). Python 3.12 made them
immortal; here we do the equivalent once, by giving each a very large reference count,
so the stolen references can never bring it to zero. Harmless where the bug is absent.
``tests/ui/test_widgets.py`` shows the bug and checks the guard.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # far more signals than a process can ever emit
_done = False


def protect_singletons() -> None:
    """Raise the reference counts of True, False and None far above any possible leak."""
    global _done
    if _done or sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        _done = True
        return
    for obj in (True, False, None):
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    _done = True
