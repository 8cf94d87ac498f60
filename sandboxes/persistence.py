"""Keeping a sandbox's records on disk, so a restarted gateway finds the vendor records its runs point at.

One mechanism for every sandbox: a sandbox names the part of its state a restart must keep (its durable
state: records, id counters, idempotency keys; not tokens, rate windows, request logs or faults) by
implementing `DurableSandbox`, and `persist_sandbox` wraps its app so that

- at start the saved state replaces the seed (the seed is used only when nothing was saved yet);
- after every request with an unsafe method (POST, PUT, PATCH, DELETE, MERGE) that changed the durable
  state, the state is written before the response leaves: to a temporary file, fsynced, renamed over
  ``{data_dir}/sandboxes/{vendor}.json``, and the directory fsynced. A vendor write the sandbox has
  answered is therefore on disk, and a killed server restarts with every record its runs were told about.
  Reads never write; an unsafe request that changed nothing (a token, a query sent as POST, a refused
  write) costs one encoding and a comparison, no disk write.
- when the write fails (disk full, read-only mount), the sandbox goes back to the state last saved and
  answers 503 with Retry-After, so the caller retries and memory never runs ahead of the disk.

A process that mounts persisted sandboxes holds a shared lock on ``{data_dir}/sandboxes/.lock`` for its
lifetime; `data_dir_in_use` tries the exclusive lock, which is how ``stratum demo reset`` tells that a
server still uses the directory. Only one process saves a vendor's state: the first to take the exclusive
lock on ``{vendor}.owner``. Others on the same directory (``stratum serve --workers N``, or a
``stratum worker`` carrying its own sandboxes) start from the saved state and keep their writes in memory,
as every process did before sandboxes were persisted: were each to save, the last one would overwrite the
records the others had answered. Writes that finish together share one save (``_Persisting``).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

import msgspec

from sandboxes.faults import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from litestar import Litestar

    from sandboxes.faults import ASGIApp

__all__ = [
    "STATE_DIR",
    "DurableSandbox",
    "SandboxStateError",
    "SandboxStore",
    "data_dir_in_use",
    "persist_sandbox",
]

STATE_DIR = "sandboxes"
"""The sandboxes' directory below the data directory."""

_log = logging.getLogger("stratum.sandboxes")
_LOCK_FILE = ".lock"
# JSON rather than msgpack: a vendor's JSON numbers have no size limit (a 29-digit amount made through a
# sandbox's REST API must be kept as the vendor keeps it), and msgpack's integers stop at 64 bits.
_SUFFIX = ".json"
# Bumped when a sandbox's durable state changes shape; a file of another format is refused, not guessed at.
_FORMAT = 1
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE", "MERGE"})


class DurableSandbox(Protocol):
    """A sandbox whose durable state can be saved and restored (``app.state.sandbox`` of its app)."""

    @property
    def durable_type(self) -> type[Any]:
        """The msgspec-decodable type `durable_state` returns."""
        ...

    def durable_state(self) -> Any:
        """What a restart must keep, as a value msgspec encodes (a Struct or dataclass)."""
        ...

    def restore_durable_state(self, state: Any) -> None:
        """Replace the durable state with ``state`` (a value of `durable_type`)."""
        ...


class SandboxStateError(Exception):
    """A saved sandbox state that cannot be read back (another format, a damaged file)."""


class _Saved(msgspec.Struct, array_like=True):
    format: int
    state: msgspec.Raw


class SandboxStore:
    """The saved durable state of one sandbox: ``{data_dir}/sandboxes/{vendor}.json``."""

    def __init__(self, data_dir: str | os.PathLike[str], vendor: str) -> None:
        self.directory = Path(data_dir) / STATE_DIR
        self.path = self.directory / f"{vendor}{_SUFFIX}"
        self._lock: IO[bytes] | None = None
        self._owner: IO[bytes] | None = None

    def acquire(self) -> None:
        """Hold the directory's shared lock for the life of this process (released when it exits)."""
        if self._lock is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = os.open(self.directory / _LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._lock = os.fdopen(lock, "ab")
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_SH)

    def claim(self) -> bool:
        """Become the one process that saves this vendor's state (until it exits); False when another
        process already is."""
        if self._owner is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            owner = os.fdopen(os.open(self.path.with_suffix(".owner"), os.O_WRONLY | os.O_CREAT, 0o600), "wb")
            try:
                fcntl.flock(owner.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner.close()
                return False
            self._owner = owner
        return True

    def release(self) -> None:
        """Let go of both locks, as the process's exit would (tests stop a sandbox this way)."""
        for lock in (self._owner, self._lock):
            if lock is not None:
                lock.close()
        self._owner = self._lock = None

    def load(self, state_type: type[Any]) -> Any | None:
        """The saved state, or None when none was saved; raises `SandboxStateError` for an unreadable one."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            saved = msgspec.json.decode(data, type=_Saved)
            if saved.format != _FORMAT:
                raise SandboxStateError(f"{self.path} is in format {saved.format}, not {_FORMAT}")
            return msgspec.json.decode(saved.state, type=state_type)
        except msgspec.DecodeError as exc:
            raise SandboxStateError(f"{self.path} cannot be read: {exc}") from exc

    def save(self, encoded_state: bytes) -> None:
        """Write the state atomically and durably: temp file, fsync, rename, fsync of the directory."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = msgspec.json.encode(_Saved(_FORMAT, msgspec.Raw(encoded_state)))
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            # 0600 from the moment it exists: vendor records carry customer data (apis.data_dir).
            with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def data_dir_in_use(data_dir: str | os.PathLike[str]) -> bool:
    """Whether a running process holds persisted sandboxes in ``data_dir`` (it holds the shared lock)."""
    path = Path(data_dir) / STATE_DIR / _LOCK_FILE
    if not path.exists():
        return False
    with path.open("ab") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return False


class _Persisting:
    """ASGI layer that saves the durable state after a state-changing request, before its response.

    Saves are group commits: a request that changed the state waits, before its response starts, for a save
    that began after its change; one writer task encodes the state as it is then and writes it off the event
    loop (``asyncio.to_thread``), and every request that finished its change meanwhile waits for the next
    save, which covers them all. Each answered write is still on disk before its answer leaves, as when every
    request saved alone on the loop; but concurrent writes share one encoding and one pair of fsyncs, and the
    loop serves other requests while the disk works (the saves were a quarter of an activation's CPU at
    concurrency 8, and each blocked the loop for its fsyncs)."""

    def __init__(self, app: ASGIApp, sandbox: DurableSandbox, store: SandboxStore, saved: bytes) -> None:
        self.app = app
        self.sandbox = sandbox
        self.store = store
        self.saved = saved  # the encoded state on disk (or the seed's, before the first write)
        self._waiting: list[asyncio.Future[bool]] = []  # requests whose changes the next save must cover
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("method", "GET")).upper() not in _UNSAFE:
            await self.app(scope, receive, send)
            return

        refused = False

        async def saving_send(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the rest of the answer the 503 replaced
            if message["type"] == "http.response.start" and not await self._saved():
                refused = True
                await send(_UNAVAILABLE_START)
                await send({"type": "http.response.body", "body": _UNAVAILABLE_BODY, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, saving_send)

    async def _saved(self) -> bool:
        """Wait until the state as it is now is on disk; False when it could not be saved (then it is back to
        what was saved last, and this request's change is forgotten)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(done)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="sandbox-state-save")
        # Shielded: a request that goes away does not stop the save others wait for.
        return await asyncio.shield(done)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            # Encoded on the loop: the state of every change in this batch, and of none half-made.
            encoded = msgspec.json.encode(self.sandbox.durable_state())
            ok = True
            if encoded != self.saved:
                try:
                    await asyncio.to_thread(self.store.save, encoded)
                except OSError:
                    # Memory must not run ahead of the disk: back to what was saved, and the callers retry.
                    # Changes made since this save began are gone with it, so their requests fail too.
                    last_saved = msgspec.json.decode(self.saved, type=self.sandbox.durable_type)
                    self.sandbox.restore_durable_state(last_saved)
                    ok = False
                    batch += self._waiting
                    self._waiting = []
                else:
                    self.saved = encoded
            for future in batch:
                if not future.done():
                    future.set_result(ok)


_UNAVAILABLE_BODY = msgspec.json.encode(
    {"error": "sandbox_unavailable", "message": "The sandbox could not save its state; retry later."}
)
_UNAVAILABLE_START: Message = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_UNAVAILABLE_BODY)).encode()),
        (b"retry-after", b"1"),
    ],
}


def persist_sandbox(app: Litestar, data_dir: str | os.PathLike[str], vendor: str) -> Litestar:
    """Keep the durable state of the sandbox ``app`` (built by its ``create_*_sandbox``) in ``data_dir``.

    Loads the state saved there, if any, in place of the seed; raises `SandboxStateError` when it cannot
    be read (``stratum demo reset`` starts over)."""
    sandbox = cast("DurableSandbox", app.state.sandbox)
    store = SandboxStore(data_dir, vendor)
    store.acquire()
    saved_state = store.load(sandbox.durable_type)
    if saved_state is not None:
        sandbox.restore_durable_state(saved_state)
    app.state.sandbox_store = store
    if not store.claim():
        _log.warning(
            "sandbox_not_persisted",
            extra={"vendor": vendor, "reason": "another process on this data directory saves its state"},
        )
        return app
    saved = msgspec.json.encode(sandbox.durable_state())
    app.asgi_handler = cast("Any", _Persisting(cast("ASGIApp", app.asgi_handler), sandbox, store, saved))
    return app
