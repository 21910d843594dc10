"""The ``op-proxy`` command: serve, init, clients, keys, db, hash-password."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
import time

from op_proxy.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines add nothing the audit log lacks
    try:
        settings = None if args.run in (hash_password, clients_hash_secret) else load_settings(args.config)
        # serve checks the database in its own start-up, which is bounded and honours SIGTERM/SIGINT.
        if settings is not None and args.run not in (keys_list, keys_rotate, serve):
            check_database(settings.database_url)
        return args.run(settings, args) or 0
    except ConfigError as exc:
        print(f"op-proxy: configuration error in {exc.source}: {exc.key}: {exc.reason}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"op-proxy: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if not hasattr(args, "bind") or not is_listen_error(exc):
            raise
        bind = args.bind or f"{settings.server.host}:{settings.server.port}"
        print(f"op-proxy: cannot listen on {bind}: {listen_problem(exc)}", file=sys.stderr)
        return 1
    except DatabaseError as exc:
        print(f"op-proxy: {exc}", file=sys.stderr)
        return 1


class CommandError(Exception):
    pass


def configure_logging() -> None:
    """What main() sets up, for the worker processes of ``serve --workers``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines add nothing the audit log lacks


# -- what goes wrong before a command can start: one line that says what to do, no traceback ---------

class DatabaseError(Exception):
    pass


def database_problem(url: str, error: Exception) -> DatabaseError:
    """The driver's own words (never the statement or its parameters) and where the URL is set."""
    from sqlalchemy.engine import make_url

    orig = getattr(error, "orig", None) or error
    words = " ".join(str(part) for part in getattr(orig, "args", ()) if part) or type(orig).__name__
    shown = make_url(url).render_as_string(hide_password=True)
    return DatabaseError(f"cannot use the database {shown}: {' '.join(words.split())}. Check [database] url "
                         "(or OP_PROXY_DATABASE_URL): user, password, host, port and database name, and that "
                         "the database server is running")


def check_database(url: str) -> None:
    """Connect once before a command starts: a wrong password or a stopped server is said in one line
    (``serve`` would otherwise fail inside the web server's start-up, with two tracebacks)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.ext.asyncio import create_async_engine

    if make_url(url).get_backend_name() == "sqlite":
        return  # a file: op-proxy makes it; nothing to reach

    async def connect():
        engine = create_async_engine(url, hide_parameters=True)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(connect())
    except (SQLAlchemyError, OSError) as exc:
        raise database_problem(url, exc) from None


def is_listen_error(error: OSError) -> bool:
    import errno
    import socket

    return isinstance(error, socket.gaierror) or error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL,
                                                                  errno.EACCES)


def listen_problem(error: OSError) -> str:
    import errno
    import socket

    if isinstance(error, socket.gaierror):
        return "not a host:port this machine has (--bind 127.0.0.1:8080, or server.host and server.port)"
    if error.errno == errno.EADDRINUSE:
        return ("the port is in use by another process: stop it, or choose another port (--bind, or "
                "server.port)")
    if error.errno == errno.EACCES:
        return "not allowed to use this port (ports below 1024 need privileges): choose a port above 1024"
    return "this machine has no such address: use one of its own addresses (server.host, or --bind)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="op-proxy", description="A federating OpenID Connect provider.")
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config file (default: $OP_PROXY_CONFIG or conf/dev.toml)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}",
                        help="print op-proxy's version and exit")
    commands = parser.add_subparsers(title="commands")

    serve_cmd = commands.add_parser("serve", help="migrate the database, make a key if none, and serve")
    serve_cmd.add_argument("--bind", metavar="HOST:PORT", help="host:port (default: server.host and server.port)")
    serve_cmd.add_argument("--workers", type=positive_int, default=1, metavar="N",
                           help="processes serving on the same socket; one per core (default: 1)")
    serve_cmd.set_defaults(run=serve)

    init_cmd = commands.add_parser("init", help="migrate the database, sync config clients, make a signing key")
    init_cmd.set_defaults(run=init)

    db = commands.add_parser("db", help="database").add_subparsers(title="db commands")
    db.add_parser("upgrade", help="apply the Alembic migrations").set_defaults(run=db_upgrade)
    db.add_parser("purge", help="delete expired rows, and audit events past audit.retention_days").set_defaults(
        run=db_purge)

    clients = commands.add_parser("clients", help="registered applications").add_subparsers(title="clients commands")
    add = clients.add_parser("add", help="register an application (its secret is printed once)")
    add.add_argument("client_id", help="the id the application will send (1 to 128 letters, digits and . _ ~ @ : -)")
    add.add_argument("--name", help="what people see on the sign-in and consent pages (default: the client_id)")
    add.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris", metavar="URI",
                     help="where the person returns after signing in, compared exactly (repeat for several)")
    add.add_argument("--post-logout-redirect-uri", action="append", default=[], dest="post_logout_redirect_uris",
                     metavar="URI",
                     help="where the person may return after signing out (repeat for several)")
    add.add_argument("--auth-method", default="client_secret_basic", dest="token_endpoint_auth_method",
                     choices=["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
                     help="how the app authenticates at /token (default: client_secret_basic; "
                          "none: a public client such as a single-page app, PKCE required)")
    add.add_argument("--jwks-file", metavar="FILE", help="the client's public keys (JWKS JSON), for private_key_jwt")
    add.add_argument("--scope", action="append", default=[], dest="allowed_scopes", metavar="SCOPE",
                     help="a scope the client may ask for (repeat; default: all but thaid)")
    add.add_argument("--upstream", action="append", default=[], dest="allowed_upstreams", metavar="NAME",
                     help="an upstream the client may use (repeat; default: all)")
    add.add_argument("--require-consent", action="store_true",
                     help="ask the person to agree before the app gets their claims")
    add.add_argument("--require-pkce", action="store_true",
                     help="refuse authorization requests without PKCE (public clients always need it)")
    add.add_argument("--access-token-format", choices=["jwt", "opaque"], default="jwt",
                     help="jwt: RFC 9068, verified by resource servers alone; opaque: checked by introspection")
    add.add_argument("--mode", default="oidc", choices=["oidc", "query_token"],
                     help="query_token: the old gateway's ?token= callback (prints the HS256 key once)")
    add.add_argument("--global-legacy-key", action="store_true", dest="legacy_use_global_key",
                     help="with --mode query_token: sign with the old gateway's global key ([legacy])")
    add.add_argument("--user-handler-endpoint", metavar="URL",
                     help="the app's user API, asked at every sign-in for its own record of the person (the "
                          "old gateway's contract); its X-API-SECRET is generated and printed once")
    add.add_argument("--user-handler-secret-env", metavar="VARIABLE",
                     help="with --user-handler-endpoint: take the X-API-SECRET the app already has from this "
                          "environment variable instead of generating one")
    add.set_defaults(run=clients_add)
    clients.add_parser("list", help="list applications (id, auth method, source, name)").set_defaults(
        run=clients_list)
    naming_one(clients, "show", "one application's settings", clients_show,
               "client_id", "the application's client_id")
    naming_one(clients, "rotate-secret", "new client secret, printed once", clients_rotate_secret,
               "client_id", "the application's client_id")
    naming_one(clients, "rotate-legacy-key", "new HS256 key of a query_token client, printed once",
               clients_rotate_legacy_key, "client_id", "the query_token application's client_id")
    hash_client_secret = clients.add_parser(
        "hash-secret", help="the digest of a random client secret, for client_secret_hash in the config")
    hash_client_secret.add_argument("--generate", action="store_true",
                                    help="make the secret too (printed once, with its digest)")
    hash_client_secret.set_defaults(run=clients_hash_secret)
    naming_one(clients, "remove", "delete an application", clients_remove,
               "client_id", "the application's client_id: its tokens and consents end (one of the config file "
                            "is removed from the file instead)")

    admins = commands.add_parser("admins", help="people who run the admin panel").add_subparsers(
        title="admins commands")
    create_admin_cmd = naming_one(admins, "create", "make an admin (asks for the password)", admins_create,
                                  "username", "the name the admin signs in with")
    create_admin_cmd.add_argument("--role", choices=["admin", "viewer"], default="admin",
                                  help="admin (default) changes things; viewer only looks")
    admins.add_parser("list", help="every admin, role, lock and last sign-in").set_defaults(run=admins_list)
    naming_one(admins, "remove", "remove an admin and end their sessions", admins_remove,
               "username", "the admin's name")
    naming_one(admins, "unlock", "lift a lock left by wrong passwords", admins_unlock,
               "username", "the admin's name")

    users = commands.add_parser("users", help="the users table of the PHP session mode").add_subparsers(
        title="users commands")
    users.add_parser("list", help="people, their default role and their role in each app").set_defaults(
        run=users_list)
    set_role = users.add_parser("set-role", help="change a person's role in one PHP-session app (what its "
                                                 "$_SESSION['user_info'] says)")
    set_role.add_argument("user", help="the users.id, or an e-mail address")
    set_role.add_argument("role", help="one of [legacy] roles (by default subscriber, editor, admin)")
    which = set_role.add_mutually_exclusive_group(required=True)
    which.add_argument("--client", metavar="APP", help="the php_session app (its client_id) the role is for")
    which.add_argument("--default", action="store_true",
                       help="the person's default: their role in every app that has none of its own for them")
    set_role.set_defaults(run=users_set_role)

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(title="keys commands")
    keys.add_parser("list", help="keys and their state").set_defaults(run=keys_list)
    rotate_key = keys.add_parser("rotate", help="publish a new key; it signs after keys.publish_ahead")
    rotate_key.add_argument("--now", action="store_true", help="sign with it at once (a leaked key)")
    rotate_key.set_defaults(run=keys_rotate)

    hp = commands.add_parser("hash-password", help="argon2 hash for a local user's password or a client secret a "
                                                   "person chose (generated ones: clients hash-secret)")
    hp.set_defaults(run=hash_password)
    return parser


def naming_one(commands, name: str, help: str, run, argument: str, argument_help: str) -> argparse.ArgumentParser:
    """A command that acts on the one application or admin its one argument names."""
    command = commands.add_parser(name, help=help)
    command.add_argument(argument, help=argument_help)
    command.set_defaults(run=run)
    return command


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number, 1 or more")
    return int(text)


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("op-proxy")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def keyring_for(settings):
    from op_proxy.services import keyring_for

    return keyring_for(settings)


def run(coro):
    return asyncio.run(coro)


# -- serve and init ------------------------------------------------------------------------------

def serve(settings, args):
    from op_proxy.logs import configure as configure_logs
    from op_proxy.serving import StartupDatabaseError
    from op_proxy.serving import serve as serve_until_stopped

    configure_logs(settings.logging)  # [logging] from the first line (migrations) on; workers do it again
    try:
        return serve_until_stopped(settings, config_path=args.config, bind=args.bind, workers=args.workers)
    except StartupDatabaseError as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc.error, (SQLAlchemyError, OSError)):
            raise exc.error from None
        raise database_problem(settings.database_url, exc.error) from None


def init(settings, args):
    async def go():
        from op_proxy.clients.registry import sync_config_clients
        from op_proxy.storage import Database

        db = Database(settings.database_url)
        await db.upgrade()
        await sync_config_clients(db, settings.clients, keyring_for(settings).data_key())
        await db.close()
        keyring = keyring_for(settings)
        keyring.subject_salt()  # every secret of keys/ made now, so a copy of it serves another machine
        return keyring.ensure_signing_key()

    key = run(go())
    print(f"database ready ({settings.database_url.split('://')[0]}); signing key {key.kid}")


def db_upgrade(settings, args):
    from op_proxy.storage.database import upgrade_schema

    upgrade_schema(settings.database_url)
    print("database is at the latest migration")


def db_purge(settings, args):
    from op_proxy.storage.housekeeping import purge

    deleted = run(with_db(settings, lambda db: purge(db, settings)))
    print(f"deleted what expired more than {settings.storage.purge_grace} s ago, and audit events older than "
          f"{settings.audit.retention_days} days:")
    for table, count in deleted.items():
        print(f"  {table:<20} {count}")


# -- clients -------------------------------------------------------------------------------------

async def with_db(settings, action):
    from op_proxy.storage import Database
    from op_proxy.storage.database import upgrade_schema

    await asyncio.to_thread(upgrade_schema, settings.database_url)
    db = Database(settings.database_url)
    try:
        return await action(db)
    finally:
        await db.close()


def clients_add(settings, args):
    from op_proxy.clients.registry import ClientExists, create_client
    from op_proxy.clients.validation import ClientValidationError

    fields = {k: getattr(args, k) for k in ("client_id", "name", "redirect_uris", "post_logout_redirect_uris",
                                            "token_endpoint_auth_method", "allowed_scopes", "allowed_upstreams")}
    fields.update(require_consent=args.require_consent, require_pkce=args.require_pkce, mode=args.mode,
                  legacy_use_global_key=args.legacy_use_global_key, access_token_format=args.access_token_format)
    if args.jwks_file:
        with open(args.jwks_file) as handle:
            fields["jwks"] = json.load(handle)
    for upstream in fields["allowed_upstreams"]:
        if upstream not in settings.upstreams:
            raise CommandError(f"unknown upstream {upstream!r}")
    if args.legacy_use_global_key and args.mode != "query_token":
        raise CommandError("--global-legacy-key is for --mode query_token")
    if args.legacy_use_global_key and not settings.legacy.global_key:
        raise CommandError("--global-legacy-key: op-proxy has no global key; set [legacy] global_key_env first")
    api_secret = user_handler_secret(args)
    fields.update(user_handler_endpoint=args.user_handler_endpoint, user_handler_secret=api_secret)
    try:
        client, secret = run(with_db(settings, lambda db: create_client(db, fields, keyring_for(settings).data_key())))
    except ClientValidationError as exc:
        raise CommandError(f"{exc.field}: {exc.reason}") from None
    except ClientExists:
        raise CommandError(f"client {args.client_id} already exists") from None
    print(f"client {client.client_id} registered")
    if client.mode == "query_token" and client.legacy_use_global_key:
        print("?token= is signed with the old gateway's global key ([legacy]): the app keeps the key it has")
    elif secret and client.mode == "query_token":
        print(f"HS256 key for ?token= (shown once, store it in the app now): {secret}")
    elif secret:
        print(f"client secret (shown once, store it now): {secret}")
    if client.user_handler_endpoint and not args.user_handler_secret_env:
        print(f"user handler API secret, sent as X-API-SECRET (shown once, store it in the app now): {api_secret}")


def user_handler_secret(args) -> str | None:
    """The X-API-SECRET op-proxy sends the app's user handler: generated (as the admin panel does), or the
    one the app already has, from the environment variable named."""
    from op_proxy.security import random_token

    if not args.user_handler_endpoint:
        if args.user_handler_secret_env:
            raise CommandError("--user-handler-secret-env is for --user-handler-endpoint")
        return None
    if not args.user_handler_secret_env:
        return random_token(24)
    secret = os.environ.get(args.user_handler_secret_env)
    if not secret:
        raise CommandError(f"--user-handler-secret-env: environment variable {args.user_handler_secret_env} "
                           "is not set")
    return secret


def legacy_key_in_use(client, settings) -> str | None:
    """Which HS256 key signs a query_token client's ?token=: its own, or the old gateway's global one."""
    if client.mode != "query_token":
        return None
    if client.legacy_use_global_key:
        configured = "" if settings.legacy.global_key else " (NOT CONFIGURED: every sign-in fails)"
        return "the old gateway's global key ([legacy] global_key_env)" + configured
    return "its own HS256 key (op-proxy clients rotate-legacy-key replaces it)"


def describe_client(client, settings) -> dict:
    legacy = {} if client.mode != "query_token" else {
        "legacy_key": legacy_key_in_use(client, settings), "legacy_token_lifetime": client.legacy_token_lifetime}
    return {
        "client_id": client.client_id, "name": client.name, "enabled": client.enabled, "source": client.source,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "redirect_uris": client.redirect_uris, "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "allowed_scopes": client.allowed_scopes or "(default: all but thaid)",
        "allowed_upstreams": client.allowed_upstreams or "(all)",
        "require_consent": client.require_consent, "require_pkce": client.require_pkce or client.is_public,
        "subject_type": client.subject_type, "mode": client.mode,
        "user_handler_endpoint": client.user_handler_endpoint or "(none)",
        **{name: getattr(client, name) or "(the server's)" for name in
           ("access_token_lifetime", "id_token_lifetime", "refresh_token_lifetime")},
        **legacy,
        "created_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(client.created_at)),
    }


def clients_list(settings, args):
    from op_proxy.clients.registry import list_clients

    print("CLIENT_ID\tAUTH_METHOD\tSOURCE\tNAME")
    for client in run(with_db(settings, list_clients)):
        state = "" if client.enabled else " (disabled)"
        print(f"{client.client_id}\t{client.token_endpoint_auth_method}\t{client.source}\t{client.name}{state}")


def clients_show(settings, args):
    from op_proxy.storage.models import Client

    async def fetch(db):
        async with db.session() as session:
            return await session.get(Client, args.client_id)

    client = run(with_db(settings, fetch))
    if client is None:
        raise CommandError(f"no client {args.client_id}")
    print(json.dumps(describe_client(client, settings), indent=2, ensure_ascii=False))


def rotate_secret(settings, client_id: str, kind: str, data_key: bytes | None = None) -> str:
    from op_proxy.clients.registry import rotate_secret

    try:
        return run(with_db(settings, lambda db: rotate_secret(db, client_id, kind, data_key)))
    except LookupError:
        raise CommandError(f"no client {client_id}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def clients_rotate_secret(settings, args):
    secret = rotate_secret(settings, args.client_id, "secret")
    print(f"new client secret for {args.client_id} (shown once; the old one no longer works): {secret}")


# A digest (one SHA-256) is safe only for a secret nobody can guess: 32 random characters or more.
MIN_DIGESTED_SECRET_LENGTH = 32


def clients_hash_secret(_settings, args):
    from op_proxy.clients.registry import new_client_secret, stored_client_secret

    if args.generate:
        secret = new_client_secret()
        print(f"client secret (give it to the app; shown once): {secret}")
        print(f'client_secret_hash = "{stored_client_secret(secret)}"')
        return
    secret = getpass.getpass("client secret: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(secret) < MIN_DIGESTED_SECRET_LENGTH:
        raise CommandError(f"a digest suits only a random secret of {MIN_DIGESTED_SECRET_LENGTH} characters or "
                           "more: use --generate to make one, or `op-proxy hash-password` (argon2) for a secret a "
                           "person chose")
    print(stored_client_secret(secret))


def clients_rotate_legacy_key(settings, args):
    key = rotate_secret(settings, args.client_id, "legacy-key", keyring_for(settings).data_key())
    print(f"new HS256 key for {args.client_id} (shown once; tokens signed with the old one stop working): {key}")


def clients_remove(settings, args):
    from op_proxy.clients.registry import remove_client

    try:
        run(with_db(settings, lambda db: remove_client(db, args.client_id)))
    except LookupError:
        raise CommandError(f"no client {args.client_id}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(f"client {args.client_id} removed")


# -- admins --------------------------------------------------------------------------------------

def admins_create(settings, args):
    from admin.auth import create_admin

    if sys.stdin.isatty():
        password = getpass.getpass("password (10 characters at least): ")
        if getpass.getpass("again: ") != password:
            raise CommandError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        run(with_db(settings, lambda db: create_admin(db, args.username, password, args.role)))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(f"admin {args.username} ({args.role}) created: sign in at {settings.issuer}/admin")


def admins_list(settings, args):
    from sqlalchemy import select

    from op_proxy.storage.models import Admin

    async def fetch(db):
        async with db.session() as session:
            return list((await session.scalars(select(Admin).order_by(Admin.username))).all())

    now = time.time()
    for admin in run(with_db(settings, fetch)):
        locked = " locked" if admin.locked_until and admin.locked_until > now else ""
        last = (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(admin.last_sign_in_at))
                if admin.last_sign_in_at else "never signed in")
        print(f"{admin.username}\t{admin.role}{locked}\t{admin.shown_name}\t{last}")


def admins_change(settings, username: str, change) -> None:
    """Apply ``change(session, admin)`` to one admin, or say there is no such admin."""
    from sqlalchemy import select

    from op_proxy.storage.models import Admin

    async def apply(db):
        async with db.transaction() as session:
            admin = await session.scalar(select(Admin).where(Admin.username == username))
            if admin is None:
                return False
            await change(session, admin)
            return True

    if not run(with_db(settings, apply)):
        raise CommandError(f"no admin {username}")


def admins_remove(settings, args):
    from sqlalchemy import delete

    from op_proxy.storage.models import AdminSession

    async def remove(session, admin):
        await session.execute(delete(AdminSession).where(AdminSession.admin_id == admin.id))
        await session.delete(admin)

    admins_change(settings, args.username, remove)
    print(f"admin {args.username} removed; their sessions have ended")


def admins_unlock(settings, args):
    async def unlock(_session, admin):
        admin.locked_until, admin.failed_attempts = None, 0

    admins_change(settings, args.username, unlock)
    print(f"admin {args.username} may sign in again")


# -- users ---------------------------------------------------------------------------------------

def users_list(settings, args):
    from sqlalchemy import select

    from op_proxy.legacy.users import roles_by_user
    from op_proxy.storage.models import User

    async def fetch(db):
        async with db.session() as session:
            users = list((await session.scalars(select(User).order_by(User.id))).all())
        return users, await roles_by_user(db)

    users, app_roles = run(with_db(settings, fetch))
    for user in users:
        own = " ".join(f"{client_id}={role}" for client_id, role in app_roles.get(user.id, {}).items())
        print(f"{user.id}\t{user.role}\t{user.email or '-'}\t{user.name}" + (f"\t{own}" if own else ""))


def users_set_role(settings, args):
    from op_proxy.legacy.users import RoleRefused, set_role

    try:
        user = run(with_db(settings, lambda db: set_role(db, args.user, args.role, client_id=args.client,
                                                         accepted=settings.legacy.roles)))
    except RoleRefused as exc:
        raise CommandError(str(exc)) from None
    where = f"in {args.client}" if args.client else "in every app without a role of its own for them"
    print(f"{user.name}: role {args.role} {where} (from their next sign-in)")


# -- keys ----------------------------------------------------------------------------------------

def when(timestamp: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "-"


def keys_list(settings, args):
    keyring = keyring_for(settings)
    states = keyring.states()
    if not states:
        print("no signing keys yet: run `op-proxy init`")
    for state in reversed(states):
        detail = {"next": f"signs from {when(state.key.signs_from)}",
                  "signing": f"signing since {when(state.key.signs_from)}",
                  "retired": f"retired {when(state.retired_at)}, published until {when(state.published_until)}"}
        print(f"{state.key.kid}\t{state.status}\t{detail[state.status]}")


def keys_rotate(settings, args):
    keyring = keyring_for(settings)
    keyring.ensure_signing_key()
    key = keyring.rotate(immediately=args.now)
    if args.now:
        print(f"new key {key.kid} signs now; the old key stays published until its tokens expire")
    else:
        print(f"new key {key.kid} published; it signs from {when(key.signs_from)}")


def hash_password(_settings, args):
    from op_proxy.security import hash_secret

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        raise CommandError("empty password")
    print(hash_secret(password))


if __name__ == "__main__":
    sys.exit(main())
