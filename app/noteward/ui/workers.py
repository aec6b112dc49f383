"""The one worker API for all background work in the desktop client.

Every long or blocking call (unlocking, importing, summarizing, searching, de-identifying)
is a plain function ``fn(ctx, *args)`` that receives plain data, never widgets. It runs on
the :class:`OwnerThread` that owns the stateful resource it needs (the vault connection,
the ``Llama`` instance, the spaCy pipeline); the thread keeps that resource in
``ctx.state`` so no other thread ever touches it. The function reports back through the
:class:`Job` it was submitted as, whose Qt signals are delivered on the GUI thread:

- ``job_did_progress(done, total)`` while it runs,
- ``job_did_stream(item)`` for streamed results (summary sentences, tokens),
- exactly one of ``job_did_succeed(result)``, ``job_did_fail(message)``,
  ``job_did_cancel()``,
- then ``job_did_end()``, always last.

Cancellation is a :class:`threading.Event` the function checks itself (``ctx.cancel`` is
passed straight to the services). Nothing here ever blocks one thread on another: the GUI
thread only puts requests on a queue and receives queued signals.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from noteward.core.errors import CancelledError, NotewardError

log = logging.getLogger(__name__)


class Job(QObject):
    """A request handed to an owner thread; its public signals are emitted on the GUI thread.

    The worker emits the private ``_did_*`` signals; they reach the Job through queued
    connections and are re-emitted as the public ones on the Job's (GUI) thread. So any
    slot, a lambda included, runs on the GUI thread, never on the worker.
    """

    job_did_progress = Signal(int, int)
    job_did_stream = Signal(object)
    job_did_succeed = Signal(object)
    job_did_fail = Signal(str)
    job_did_cancel = Signal()
    job_did_end = Signal()

    _did_progress = Signal(int, int)
    _did_stream = Signal(object)
    _did_succeed = Signal(object)
    _did_fail = Signal(str)
    _did_cancel = Signal()
    _did_end = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.cancel_event = threading.Event()
        self.finished = False
        self.outcome: str | None = None  # "succeeded" | "failed" | "cancelled"
        self.runs_if_cancelled = False  # see OwnerThread.submit
        q = Qt.ConnectionType.QueuedConnection
        self._did_progress.connect(self.job_did_progress, q)
        self._did_stream.connect(self.job_did_stream, q)
        self._did_succeed.connect(self.job_did_succeed, q)
        self._did_fail.connect(self.job_did_fail, q)
        self._did_cancel.connect(self.job_did_cancel, q)
        self._did_end.connect(self._end, q)
        # Deleted on the GUI thread after its last signal, whether or not the OwnerThread
        # that ran it still exists by then.
        self.job_did_end.connect(self.deleteLater)

    def cancel(self) -> None:
        """Ask the work to stop; the function sees it at its next check."""
        self.cancel_event.set()

    @Slot()
    def _end(self) -> None:
        self.finished = True
        self.job_did_end.emit()


@dataclass
class JobContext:
    """What a background function receives besides its plain-data arguments."""

    job: Job
    state: dict[str, Any]
    cancel: threading.Event = field(init=False)

    def __post_init__(self) -> None:
        self.cancel = self.job.cancel_event

    def progress(self, done: int, total: int) -> None:
        self.job._did_progress.emit(int(done), int(total))

    def stream(self, item: Any) -> None:
        self.job._did_stream.emit(item)

    def check(self) -> None:
        """Raise CancelledError if the job was cancelled."""
        if self.cancel.is_set():
            raise CancelledError("cancelled")


Work = Callable[..., Any]


def _lower_priority(nice: int) -> None:
    """Give this thread (and the threads it starts: llama.cpp's, torch's) a lower CPU
    priority than the GUI thread, so on a busy 2-core machine the window still gets the
    CPU when it needs it. Linux only; elsewhere a no-op."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        pass


class OwnerThread(QThread):
    """One thread owning one stateful resource; runs its jobs one at a time, in order.

    :meth:`submit` hands the job to the thread only at the GUI's next event-loop turn, so
    the caller can connect to the Job's signals first without a race.
    """

    jobs_will_queue = Signal()

    def __init__(self, name: str, parent: QObject | None = None, *, nice: int = 5) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.nice = nice
        self._queue: queue.Queue[tuple[Job, Work, tuple[Any, ...], dict[str, Any]] | None] = (
            queue.Queue()
        )
        self._state: dict[str, Any] = {}
        self._live: set[Job] = set()
        self._closers: list[Callable[[dict[str, Any]], None]] = []
        self._pending: list[tuple[Job, Work, tuple[Any, ...], dict[str, Any]]] = []
        self.jobs_will_queue.connect(self._flush, Qt.ConnectionType.QueuedConnection)

    def on_stop(self, closer: Callable[[dict[str, Any]], None]) -> None:
        """Register a function run on this thread when it stops (closes its resource)."""
        self._closers.append(closer)

    def submit(
        self, name: str, fn: Work, *args: Any, runs_if_cancelled: bool = False, **kwargs: Any
    ) -> Job:
        """Queue ``fn(ctx, *args, **kwargs)`` on this thread and return its Job.

        ``runs_if_cancelled``: run ``fn`` even if the job is cancelled before it starts (it
        then sees ``ctx.cancel`` set), for work that owns something only it can release.
        """
        if not self.isRunning():
            self.start()
        # The Job's C++ side belongs to the application object, not to this thread:
        # - dropping the worker's Python reference never deletes it on the worker thread;
        #   it is deleted on the GUI thread once job_did_end, its last signal, is delivered;
        # - deleting it can never delete it a second time. Its connections (a widget's
        #   lambda, say) may hold the last reference to whatever owns this OwnerThread; if
        #   the Job were this thread's child, destroying the Job would destroy this thread
        #   and with it, again, the Job ("shared QObject was deleted directly", a segfault).
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("OwnerThread needs a QCoreApplication (queued signals do too)")
        job = Job(name, parent=app)
        job.runs_if_cancelled = runs_if_cancelled
        self._live.add(job)
        job.job_did_end.connect(self._job_did_end)
        self._pending.append((job, fn, args, kwargs))
        self.jobs_will_queue.emit()
        return job

    @Slot()
    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for item in pending:
            self._queue.put(item)

    @Slot()
    def _job_did_end(self) -> None:
        job = self.sender()
        if isinstance(job, Job):
            self._live.discard(job)

    def cancel_all(self) -> None:
        """Cancel every queued or running job (used when the vault locks)."""
        for job in list(self._live):
            job.cancel()

    def stop(self) -> None:
        """Cancel everything, close the resource on its own thread, and end the thread."""
        self.cancel_all()
        self._flush()
        if self.isRunning():
            self._queue.put(None)
            self.wait()

    def run(self) -> None:  # noqa: D401 - QThread entry point
        _lower_priority(self.nice)
        while True:
            item = self._queue.get()
            if item is None:
                break
            job, fn, args, kwargs = item
            self._run_one(job, fn, args, kwargs)
        for closer in self._closers:
            try:
                closer(self._state)
            except Exception as exc:  # pragma: no cover - closing must not raise out of a thread
                log.error("closing a resource failed on %s: %s", self.objectName(), type(exc).__name__)
        self._state.clear()

    def _run_one(self, job: Job, fn: Work, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        started = time.perf_counter()
        if job.cancel_event.is_set() and not job.runs_if_cancelled:
            job.outcome = "cancelled"
            job._did_cancel.emit()
            job._did_end.emit()
            return
        try:
            result = fn(JobContext(job, self._state), *args, **kwargs)
        except CancelledError:
            job.outcome = "cancelled"
            job._did_cancel.emit()
        except NotewardError as exc:
            job.outcome = "failed"
            job._did_fail.emit(str(exc))
        except Exception as exc:  # a bug: log type and code locations only; messages may hold PHI
            frames = traceback.extract_tb(exc.__traceback__)
            where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames[::-1][:6])
            log.error("job %s failed on %s: %s at %s", job.name, self.objectName(), type(exc).__name__, where)
            job.outcome = "failed"
            job._did_fail.emit(f"Unexpected error ({type(exc).__name__}); see the log.")
        else:
            if job.cancel_event.is_set():
                job.outcome = "cancelled"
                job._did_cancel.emit()
            else:
                job.outcome = "succeeded"
                job._did_succeed.emit(result)
        log.info(
            "job %s on %s: %s in %.0f ms",
            job.name, self.objectName(), job.outcome, (time.perf_counter() - started) * 1000,
        )
        job._did_end.emit()
