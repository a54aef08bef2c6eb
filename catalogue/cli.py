"""The ``catalogue`` command line.

Commands that touch the store honour ``--data-dir`` / ``CATALOGUE_DATA_DIR`` and the rest of the
configuration. Local commands act as the operator (audited as ``cli``). Errors print one clear
line and exit non-zero.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from catalogue import __version__
from catalogue.config import SETTINGS, Config, load_config
from catalogue.errors import CatalogueError
from catalogue.logs import setup_logging
from catalogue.model.identity import Identity, Organisation, Role, User
from catalogue.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])

CLI_IDENTITY = Identity(
    user_id="00000000-0000-0000-0000-000000000000", username="cli", role=Role.ADMIN
)


class Terminate(SystemExit):
    """Raised from the SIGTERM handler so ``finally`` blocks run (and PostgreSQL stops).

    A ``SystemExit`` on purpose: waitress's event loop re-raises SystemExit but swallows other
    exceptions raised while it handles a request (a bare ``except``), which once left a server
    running after SIGTERM."""


def _on_sigterm(signum: int, frame: Any) -> None:
    # the first SIGTERM unwinds the main thread so cleanup runs; a second one is not caught
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminate()


def _install_signal_handlers() -> None:
    """SIGTERM stops cleanly (finally blocks run); SIGUSR1 dumps every thread's stack."""
    import faulthandler

    signal.signal(signal.SIGTERM, _on_sigterm)
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def handle_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CatalogueError as exc:
            click.echo(f"error: {exc.message}", err=True)
            if exc.details:
                click.echo(json.dumps(exc.details, indent=2, default=str), err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _config(ctx: click.Context, **overrides: Any) -> Config:
    obj = ctx.find_root().obj or {}
    values = {"data_dir": obj.get("data_dir"), **overrides}
    config = load_config(config_file=obj.get("config_file"), **values)
    setup_logging(config.log_level, config.log_format)
    return config


@contextmanager
def _runtime(ctx: click.Context, with_search: bool = True, **overrides: Any) -> Iterator[Runtime]:
    config = _config(ctx, **overrides)
    runtime = Runtime(config)
    try:
        runtime.start(with_search=with_search)
        yield runtime
    finally:
        runtime.close()


@click.group()
@click.version_option(__version__, prog_name="catalogue")
@click.option(
    "--data-dir",
    envvar="CATALOGUE_DATA_DIR",
    default=None,
    help="Data folder (embedded PostgreSQL, tantivy index, keys).",
)
@click.option(
    "--config",
    "config_file",
    envvar="CATALOGUE_CONFIG",
    default=None,
    help="TOML configuration file.",
)
@click.pass_context
def main(ctx: click.Context, data_dir: str | None, config_file: str | None) -> None:
    """Cancer Imaging Catalogue: DCAT-AP/FHIR/OMOP metadata catalogue and cohort search."""
    ctx.obj = {"data_dir": data_dir, "config_file": config_file}


# -- serve / demo -----------------------------------------------------------------------------
def _serve(
    runtime: Runtime, host: str, port: int, workers: int, ready: Callable[[], None] | None = None,
    processes: int = 1, config_file: str | None = None,
) -> None:
    """Serve on ``host:port`` with ``workers`` threads per process; with ``processes`` > 1 this
    process is the primary and starts the other processes (``catalogue.serving``)."""
    from catalogue import serving
    from catalogue.api.app import create_app

    app = create_app(runtime=runtime)
    sock = serving.listen(host, port)
    pool: serving.WorkerPool | None = None
    try:
        if processes > 1:
            pool = serving.WorkerPool(
                processes - 1, sock,
                serving.worker_argv(runtime.config.data_dir, config_file),
                serving.worker_env(runtime.config, runtime.database.url))
            pool.start()
        bound = sock.getsockname()[1]
        click.echo(
            f"Cancer Imaging Catalogue {__version__} on http://{host}:{bound} "
            f"(store: {'embedded PostgreSQL' if runtime.embedded else 'PostgreSQL'}, "
            f"search: {runtime.search.name if runtime.search else 'none'}, "
            f"{processes} process{'es' if processes > 1 else ''} of {workers} threads)",
            err=True,
        )
        serving.run_server(app, sock, workers, ready, runtime=runtime)
    finally:
        if pool is not None:
            pool.stop()
        sock.close()


@main.command()
@click.option("--host", default=None, help="Bind address (CATALOGUE_HOST).")
@click.option("--port", type=int, default=None, help="Port (CATALOGUE_PORT).")
@click.option("--workers", type=int, default=None, help="Worker threads (CATALOGUE_WORKERS).")
@click.option("--processes", type=int, default=None,
              help="Serving processes sharing the port (CATALOGUE_PROCESSES); about one core "
                   "each.")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None,
          processes: int | None) -> None:
    """Run the catalogue with a production WSGI server (migrates the database first)."""
    _install_signal_handlers()
    config = _config(ctx, host=host, port=port, workers=workers, processes=processes)
    runtime = Runtime(config)
    try:
        runtime.start(background_indexer=True)
        if config.harvest_scheduler:
            runtime.start_scheduler()
        _serve(runtime, config.host, config.port, config.workers, processes=config.processes,
               config_file=(ctx.find_root().obj or {}).get("config_file"))
    except (KeyboardInterrupt, Terminate):
        pass
    finally:
        runtime.close()


@main.command("serve-worker", hidden=True)
@click.option("--fd", type=int, required=True, help="The listening socket, from the primary.")
@click.pass_context
@handle_errors
def serve_worker(ctx: click.Context, fd: int) -> None:
    """One worker process of ``catalogue serve --processes N`` (started by the primary only)."""
    import socket

    from catalogue import serving
    from catalogue.api.app import create_app

    _install_signal_handlers()
    if not serving.die_with_parent():
        serving.watch_parent()
    config = _config(ctx)
    sock = socket.socket(fileno=fd)
    runtime = Runtime(config)
    try:
        runtime.start(migrate=False, indexer=False)
        serving.run_server(create_app(runtime=runtime), sock, config.workers,
                           runtime=runtime)
    except (KeyboardInterrupt, Terminate):
        pass
    finally:
        runtime.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.pass_context
@handle_errors
def demo(ctx: click.Context, host: str, port: int) -> None:
    """Start on the embedded defaults with the bundled demo catalogue."""
    from catalogue.demo import load_demo

    _install_signal_handlers()
    started = time.perf_counter()
    config = _config(ctx, host=host, port=port)
    runtime = Runtime(config)
    try:
        runtime.start(background_indexer=False)
        created = load_demo(runtime)
        assert runtime.indexer is not None
        runtime.indexer.drain()
        runtime.indexer.start(config.indexer_interval)

        def ready() -> None:
            click.echo(
                f"Demo ready in {time.perf_counter() - started:.2f}s "
                f"(created: {created['datasets']} datasets, {created['organisations']} "
                f"organisations, {created['users']} users). Data folder: "
                f"{config.data_dir}. Press Ctrl+C to stop.",
                err=True,
            )
            click.echo("Get a token: catalogue tokens create demo-provider", err=True)

        _serve(runtime, host, port, config.workers, ready)
    except (KeyboardInterrupt, Terminate):
        pass
    finally:
        runtime.close()


# -- config / db ------------------------------------------------------------------------------
@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration (secrets masked) and where each value came from."""
    config = _config(ctx)
    values = config.masked()
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    for s in SETTINGS:
        source = config.sources.get(s.name, "default")
        click.echo(f"{s.env:34} = {values[s.name]!s:40} ({source})")


@main.group("db")
def db_group() -> None:
    """Database schema."""


@contextmanager
def _database_url(config: Config) -> Iterator[str]:
    """The configured database's URL; on the embedded default, the data folder's server, started
    for the command if it is not running (and stopped afterwards if this command started it)."""
    if config.database_url:
        yield config.database_url
        return
    from catalogue.store.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(Path(config.data_dir))
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


@db_group.command("upgrade")
@click.pass_context
@handle_errors
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending migrations (each in its own transaction)."""
    from catalogue.store import migrations
    from catalogue.store.db import Database

    config = _config(ctx)
    with _database_url(config) as url:
        db = Database(url, timeout=config.database_timeout)
        try:
            db.open(wait=False)
            applied = migrations.upgrade(db)
        finally:
            db.close()
    click.echo(
        f"applied {len(applied)} migration(s)"
        + (": " + ", ".join(m.path.name for m in applied) if applied
           else "; the schema is up to date")
    )


@db_group.command("backup")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="The backup file to write (pg_dump custom format).")
@click.pass_context
@handle_errors
def db_backup(ctx: click.Context, output: str) -> None:
    """Back up the system of record (pg_dump, one consistent snapshot, safe while the catalogue
    runs). The search indices are not included: restore rebuilds them. Keep the server secret
    separately."""
    from catalogue.store.backup import backup

    config = _config(ctx)
    with _database_url(config) as url:
        report = backup(url, Path(output))
    rows = ", ".join(f"{k} {v}" for k, v in report.rows.items() if v)
    click.echo(f"wrote {report.path} ({report.bytes:,} bytes, schema version "
               f"{report.schema_version}, {report.seconds:.1f} s): {rows or 'no rows'}")
    if not config.secret_key:
        click.echo(f"note: the server secret is not in the backup; keep "
                   f"{Path(config.data_dir) / 'secret.key'} with it", err=True)


@db_group.command("restore")
@click.argument("backup_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--clean", is_flag=True,
              help="Replace the tables of a non-empty database (default: refuse).")
@click.option("--rebuild-index/--no-rebuild-index", default=True, show_default=True,
              help="Rebuild the search indices from the restored database.")
@click.pass_context
@handle_errors
def db_restore(ctx: click.Context, backup_file: str, clean: bool, rebuild_index: bool) -> None:
    """Restore a backup made by `catalogue db backup` (one transaction: all or nothing), apply
    newer migrations, and rebuild the search indices from it."""
    from catalogue.store import migrations
    from catalogue.store.backup import restore
    from catalogue.store.db import Database

    config = _config(ctx)
    with _database_url(config) as url:
        result = restore(url, Path(backup_file), clean=clean)
        db = Database(url, timeout=config.database_timeout)
        try:
            db.open(wait=False)
            applied = migrations.upgrade(db)
        finally:
            db.close()
    rows = ", ".join(f"{k} {v}" for k, v in result["rows"].items() if v)
    click.echo(f"restored schema version {result['schema_version']} in "
               f"{result['seconds']:.1f} s: {rows or 'no rows'}")
    if applied:
        click.echo("then applied " + ", ".join(m.path.name for m in applied))
    if rebuild_index:
        ctx.invoke(index_rebuild, which="all")


@db_group.command("status")
@click.pass_context
@handle_errors
def db_status(ctx: click.Context) -> None:
    """Show applied and pending migrations."""
    from catalogue.store import migrations

    with _runtime(ctx, with_search=False) as rt:
        pending = migrations.pending(rt.database)
        with rt.database.transaction() as conn:
            rows = conn.execute(
                "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
            ).fetchall()
    for r in rows:
        click.echo(f"applied  {r['version']:04d}_{r['name']}  {r['applied_at']:%Y-%m-%d %H:%M}")
    for m in pending:
        click.echo(f"pending  {m.path.name}")


# -- identities -------------------------------------------------------------------------------
@main.group("orgs")
def orgs_group() -> None:
    """Organisations (data providers)."""


@orgs_group.command("create")
@click.argument("org_id")
@click.option("--name", required=True)
@click.option("--country", default=None, help="ISO 3166 alpha-2 code, e.g. ES")
@click.option("--homepage", default=None)
@click.pass_context
@handle_errors
def orgs_create(
    ctx: click.Context, org_id: str, name: str, country: str | None, homepage: str | None
) -> None:
    """Create an organisation."""
    with _runtime(ctx, with_search=False) as rt:
        org = rt.identities.create_organisation(
            CLI_IDENTITY, Organisation(org_id, name, country.upper() if country else None, homepage)
        )
    click.echo(f"created organisation {org.id}")


@orgs_group.command("list")
@click.pass_context
@handle_errors
def orgs_list(ctx: click.Context) -> None:
    """List organisations."""
    with _runtime(ctx, with_search=False) as rt:
        for org in rt.identities.list_organisations():
            click.echo(f"{org.id:24} {org.country or '--':3} {org.name}")


@main.group("users")
def users_group() -> None:
    """User accounts."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option(
    "--organisation",
    "organisation_id",
    default=None,
    help="Organisation id (required for providers).",
)
@click.option("--name", "display_name", default=None)
@click.option("--email", default=None)
@click.pass_context
@handle_errors
def users_create(
    ctx: click.Context,
    username: str,
    role: str,
    organisation_id: str | None,
    display_name: str | None,
    email: str | None,
) -> None:
    """Create a user."""
    with _runtime(ctx, with_search=False) as rt:
        user = rt.identities.create_user(
            CLI_IDENTITY,
            User(
                id="",
                username=username,
                role=Role(role),
                organisation_id=organisation_id,
                display_name=display_name,
                email=email,
            ),
        )
    click.echo(f"created {user.role.value} {user.username}")


@users_group.command("list")
@click.pass_context
@handle_errors
def users_list(ctx: click.Context) -> None:
    """List users."""
    with _runtime(ctx, with_search=False) as rt:
        for u in rt.identities.list_users(CLI_IDENTITY):
            state = "" if u.active else " (deactivated)"
            click.echo(f"{u.username:24} {u.role.value:10} {u.organisation_id or '-'}{state}")


@users_group.command("deactivate")
@click.argument("username")
@click.pass_context
@handle_errors
def users_deactivate(ctx: click.Context, username: str) -> None:
    """Deactivate a user (their tokens stop working)."""
    with _runtime(ctx, with_search=False) as rt:
        rt.identities.set_user_active(CLI_IDENTITY, username, False)
    click.echo(f"deactivated {username}")


@main.group("tokens")
def tokens_group() -> None:
    """API tokens (stored hashed; the secret is shown once)."""


@tokens_group.command("create")
@click.argument("username")
@click.option("--name", default="", help="A label, e.g. the machine using it.")
@click.option("--ttl-days", type=int, default=None, help="Lifetime; 0 = never expires.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def tokens_create(
    ctx: click.Context, username: str, name: str, ttl_days: int | None, as_json: bool
) -> None:
    """Create a token for USERNAME and print it (only this once)."""
    with _runtime(ctx, with_search=False) as rt:
        issued = rt.identities.issue_token(CLI_IDENTITY, username, name, ttl_days)
    if as_json:
        click.echo(json.dumps({**asdict(issued.token), "token": issued.secret}, default=str))
    else:
        expiry = issued.token.expires_at.date() if issued.token.expires_at else "never"
        click.echo(issued.secret)
        click.echo(
            f"(token {issued.token.id} for {username}, expires {expiry}; it cannot be shown again)",
            err=True,
        )


@tokens_group.command("list")
@click.option("--user", "username", default=None)
@click.pass_context
@handle_errors
def tokens_list(ctx: click.Context, username: str | None) -> None:
    """List tokens (never their secrets)."""
    with _runtime(ctx, with_search=False) as rt:
        for t in rt.identities.list_tokens(CLI_IDENTITY, username):
            state = "revoked" if t.revoked_at else "active"
            expires = t.expires_at.date() if t.expires_at else "never"
            click.echo(f"{t.id}  {t.username or '':20} {state:8} expires {expires}  {t.name}")


@tokens_group.command("revoke")
@click.argument("token_id")
@click.pass_context
@handle_errors
def tokens_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token by its id (``cic_…``, the part before the dot)."""
    with _runtime(ctx, with_search=False) as rt:
        rt.identities.revoke_token(CLI_IDENTITY, token_id.split(".")[0])
    click.echo(f"revoked {token_id.split('.')[0]}")


# -- search index -----------------------------------------------------------------------------
@main.group("index")
def index_group() -> None:
    """The search index (derived from PostgreSQL; can be rebuilt at any time)."""


@index_group.command("rebuild")
@click.option("--index", "which", type=click.Choice(["datasets", "subjects", "all"]),
              default="all", show_default=True, help="Which index to rebuild.")
@click.pass_context
@handle_errors
def index_rebuild(ctx: click.Context, which: str) -> None:
    """Build new indices from PostgreSQL and switch to them atomically."""
    names = ["datasets", "subjects"] if which == "all" else [which]
    with _runtime(ctx) as rt:
        assert rt.indexer is not None
        for name in names:
            with click.progressbar(length=1, label=f"indexing {name}") as bar:

                def progress(done: int, total: int, bar: Any = bar) -> None:
                    bar.length = max(total, 1)
                    bar.update(done - bar.pos)

                result = rt.indexer.rebuild(progress, index=name)
            click.echo(
                f"switched to {result['index']} ({result['documents']} documents; "
                f"previous: {result['previous'] or 'none'})"
            )


@index_group.command("status")
@click.pass_context
@handle_errors
def index_status(ctx: click.Context) -> None:
    """Engine, current indices and outbox lag."""
    with _runtime(ctx) as rt:
        ready, details = rt.readiness()
    click.echo(json.dumps(details, indent=2, default=str))
    if not ready:
        sys.exit(1)


@index_group.command("drain")
@click.pass_context
@handle_errors
def index_drain(ctx: click.Context) -> None:
    """Apply every pending outbox entry now."""
    with _runtime(ctx) as rt:
        assert rt.indexer is not None
        done = rt.indexer.drain(max_seconds=3600)
    click.echo(f"applied {done} outbox entries")


# -- harvesting -------------------------------------------------------------------------------
def _progress_printer() -> Callable[[dict[str, int]], None] | None:
    """A live one-line progress display on a terminal (nothing when output is redirected)."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(counts: dict[str, int]) -> None:
        rate = counts.get("seen", 0) / max(time.monotonic() - started, 1e-6)
        parts = " ".join(f"{k} {v}" for k, v in counts.items() if v)
        click.echo(f"\r  harvesting… {parts}  ({rate:.0f} records/s)   ", nl=False, err=True)

    return show


def _drain_quietly(rt: Runtime) -> None:
    """Index what a command changed now; if the engine is down the server's indexer does it
    later from the outbox."""
    if rt.indexer is not None:
        try:
            rt.indexer.drain()
        except CatalogueError:
            pass


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.as_dict(), default=str))
        return
    if sys.stderr.isatty():
        click.echo("", err=True)
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    click.echo(
        f"run {report.run_id}: {report.status}{' (dry run)' if report.dry_run else ''} — {counts}"
    )
    if report.error:
        click.echo(f"source error: {report.error}")
    if not report.complete:
        click.echo("incomplete: part of the source could not be read (no deletions applied)")
    for e in report.errors[:200]:
        where = f" [{e['location']}]" if e.get("location") else ""
        click.echo(f"  {e['severity']}: {e.get('record') or '-'}: {e['message']}{where}")
    if len(report.errors) > 200:
        click.echo(f"  … {len(report.errors) - 200} more (see the run in the API)")


@main.group("harvest")
def harvest_group() -> None:
    """Harvest sources (DCAT-AP endpoints and files) and runs."""


@harvest_group.command("dcat")
@click.argument("source")
@click.option(
    "--organisation", "organisation_id", required=True, help="Organisation the records belong to."
)
@click.option(
    "--validation",
    type=click.Choice(["strict", "lenient"]),
    default="lenient",
    show_default=True,
    help="strict: reject records violating the SHACL shapes.",
)
@click.option("--dry-run", is_flag=True, help="Read and validate, write nothing.")
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow a source on loopback/private addresses (operator decision).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
@handle_errors
def harvest_dcat(
    ctx: click.Context,
    source: str,
    organisation_id: str,
    validation: str,
    dry_run: bool,
    allow_private: bool,
    as_json: bool,
) -> None:
    """Harvest a DCAT-AP URL or file once and print the run summary.

    Exit status 0 when the run completed (even with invalid records), 1 when the source itself
    could not be read.
    """
    with _runtime(ctx) as rt:
        report = rt.harvest.run_url(
            CLI_IDENTITY,
            "dcat",
            source,
            organisation_id,
            validation_mode=validation,
            dry_run=dry_run,
            allow_private=allow_private,
            progress=_progress_printer(),
        )
        _drain_quietly(rt)
    _print_report(report, as_json)
    if report.status != "completed":
        sys.exit(1)


def _record_harvest(ctx: click.Context, kind: str, source: str, organisation_id: str,
                    dataset: str, config: dict[str, Any], dry_run: bool, allow_private: bool,
                    token_env: str | None, as_json: bool) -> None:
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise click.UsageError(f"--token-env {token_env}: that environment variable is "
                                   "not set")
    with _runtime(ctx) as rt:
        report = rt.harvest.run_url(
            CLI_IDENTITY, kind, source, organisation_id, dry_run=dry_run,
            allow_private=allow_private, progress=_progress_printer(), dataset=dataset,
            config={k: v for k, v in config.items() if v is not None}, bearer_token=token)
        _drain_quietly(rt)
    _print_report(report, as_json)
    if report.status != "completed":
        sys.exit(1)


def _record_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options every study-level harvest command shares."""
    for option in reversed((
        click.argument("source"),
        click.option("--organisation", "organisation_id", required=True,
                     help="Organisation (provider) the records belong to."),
        click.option("--dataset", required=True,
                     help="The dataset (id or identifier) the records belong to."),
        click.option("--dry-run", is_flag=True, help="Read and validate, write nothing."),
        click.option("--allow-private", is_flag=True,
                     help="Allow a source on loopback/private addresses (operator decision)."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    )):
        command = option(command)
    return command


@harvest_group.command("fhir")
@_record_options
@click.option("--mode", type=click.Choice(["rest", "ndjson", "bundle"]), default=None,
              help="Source type (default: guessed: folder/.ndjson → ndjson, .json → bundle, "
                   "other URLs → a FHIR REST server).")
@click.option("--fhir-version", default=None,
              help="Declare the release of files (4.0.1, 4.3.0, 5.0.0); servers tell it.")
@click.option("--token-env", default=None, metavar="VAR",
              help="Environment variable holding the server's bearer token.")
@click.pass_context
@handle_errors
def harvest_fhir(ctx: click.Context, source: str, organisation_id: str, dataset: str,
                 dry_run: bool, allow_private: bool, as_json: bool, mode: str | None,
                 fhir_version: str | None, token_env: str | None) -> None:
    """Harvest Patient, ImagingStudy and Condition resources once from a FHIR server, Bulk
    Data NDJSON files or a Bundle, pseudonymised, into one dataset.

    Exit status 0 when the run completed (even with invalid records), 1 when the source itself
    could not be read.
    """
    _record_harvest(ctx, "fhir", source, organisation_id, dataset,
                    {"mode": mode, "fhir_version": fhir_version}, dry_run, allow_private,
                    token_env, as_json)


@harvest_group.command("omop")
@_record_options
@click.option("--schema", default=None, help="Schema of the CDM tables (default: cdm, else "
                                             "public).")
@click.option("--vocabulary-schema", default=None,
              help="Schema of the concept table (default: the CDM schema).")
@click.option("--password-env", default=None, metavar="VAR",
              help="Environment variable holding the database password (never stored).")
@click.option("--incremental", is_flag=True,
              help="Read only rows added since the last complete run (no deletions).")
@click.pass_context
@handle_errors
def harvest_omop(ctx: click.Context, source: str, organisation_id: str, dataset: str,
                 dry_run: bool, allow_private: bool, as_json: bool, schema: str | None,
                 vocabulary_schema: str | None, password_env: str | None,
                 incremental: bool) -> None:
    """Harvest persons, conditions, procedures and imaging occurrences once from an OMOP CDM
    v5.4 PostgreSQL database (SOURCE: a postgresql:// URL), pseudonymised, into one dataset.

    Exit status 0 when the run completed (even with invalid rows), 1 when the database could
    not be read.
    """
    _record_harvest(ctx, "omop", source, organisation_id, dataset,
                    {"schema": schema, "vocabulary_schema": vocabulary_schema,
                     "password_env": password_env, "incremental": incremental or None}, dry_run,
                    allow_private, None, as_json)


@harvest_group.command("dicomweb")
@_record_options
@click.option("--token-env", default=None, metavar="VAR",
              help="Environment variable holding the PACS's bearer token.")
@click.pass_context
@handle_errors
def harvest_dicomweb(ctx: click.Context, source: str, organisation_id: str, dataset: str,
                     dry_run: bool, allow_private: bool, as_json: bool,
                     token_env: str | None) -> None:
    """Harvest studies once from a DICOMweb (QIDO-RS) PACS (SOURCE: its DICOMweb base URL),
    pseudonymised, into one dataset.

    Exit status 0 when the run completed (even with failed studies), 1 when the PACS could not
    be read.
    """
    _record_harvest(ctx, "dicomweb", source, organisation_id, dataset, {}, dry_run,
                    allow_private, token_env, as_json)


@harvest_group.command("add")
@click.argument("url")
@click.option("--organisation", "organisation_id", required=True)
@click.option(
    "--kind",
    type=click.Choice(["dcat", "fhir", "omop", "dicomweb"]),
    default="dcat",
    show_default=True,
)
@click.option("--name", default="")
@click.option("--schedule", default=None, help="@hourly, @daily, @weekly or 'every N m|h|d'.")
@click.option("--validation", type=click.Choice(["strict", "lenient"]), default="lenient")
@click.option("--incremental", is_flag=True, help="Ask for changes since the last run.")
@click.option("--allow-private", is_flag=True)
@click.option("--dataset", default=None,
              help="fhir/omop/dicomweb: the dataset (id or identifier) the records belong to.")
@click.option("--token-env", default=None, metavar="VAR",
              help="fhir/dicomweb: environment variable holding the bearer token (the token "
                   "itself is never stored).")
@click.pass_context
@handle_errors
def harvest_add(
    ctx: click.Context,
    url: str,
    organisation_id: str,
    kind: str,
    name: str,
    schedule: str | None,
    validation: str,
    incremental: bool,
    allow_private: bool,
    dataset: str | None,
    token_env: str | None,
) -> None:
    """Register a harvest source."""
    from catalogue.store.harvest import HarvestSource

    config: dict[str, Any] = {"incremental": incremental}
    if token_env:
        config["token_env"] = token_env
    with _runtime(ctx, with_search=False) as rt:
        dataset_id = rt.harvest.resolve_dataset(organisation_id, dataset) if dataset else None
        source = rt.harvest.register(
            CLI_IDENTITY,
            HarvestSource(
                id="",
                organisation_id=organisation_id,
                kind=kind,
                url=url,
                name=name,
                schedule=schedule,
                validation_mode=validation,
                config=config,
                allow_private=allow_private,
                dataset_id=dataset_id,
            ),
        )
    click.echo(source.id)


@harvest_group.command("sources")
@click.pass_context
@handle_errors
def harvest_sources(ctx: click.Context) -> None:
    """List harvest sources."""
    with _runtime(ctx, with_search=False) as rt:
        for s in rt.harvest.list_sources(CLI_IDENTITY):
            last = s.last_run_at.strftime("%Y-%m-%d %H:%M") if s.last_run_at else "never"
            schedule = (s.schedule or "manual") + ("" if s.enabled else " (paused)")
            click.echo(
                f"{s.id}  {s.kind:8} {s.organisation_id:20} {schedule:10} "
                f"last {last}  {s.url}"
            )


@harvest_group.command("update")
@click.argument("source_id")
@click.option("--name", default=None)
@click.option("--url", default=None)
@click.option("--schedule", default=None,
              help="@hourly, @daily, @weekly or 'every N m|h|d'; '' for on demand.")
@click.option("--validation", type=click.Choice(["strict", "lenient"]), default=None)
@click.option("--incremental/--full", default=None,
              help="Ask for changes since the last run, or read everything each time.")
@click.option("--enable/--pause", "enabled", default=None,
              help="Resume or pause the schedule (a paused source can still be run by hand).")
@click.option("--allow-private/--no-allow-private", default=None)
@click.pass_context
@handle_errors
def harvest_update(ctx: click.Context, source_id: str, name: str | None, url: str | None,
                   schedule: str | None, validation: str | None, incremental: bool | None,
                   enabled: bool | None, allow_private: bool | None) -> None:
    """Change a registered source (only what is given changes)."""
    changes: dict[str, Any] = {k: v for k, v in (
        ("name", name), ("url", url), ("schedule", schedule), ("validation_mode", validation),
        ("enabled", enabled), ("allow_private", allow_private)) if v is not None}
    with _runtime(ctx, with_search=False) as rt:
        if incremental is not None:
            config = dict(rt.harvest.get_source(CLI_IDENTITY, source_id).config)
            changes["config"] = {**config, "incremental": incremental}
        if not changes:
            raise CatalogueError("nothing to change: give at least one option")
        source = rt.harvest.update_source(CLI_IDENTITY, source_id, changes)
    click.echo(f"{source.id}\t{source.kind}\t{source.organisation_id}\t"
               f"{source.schedule or 'manual'}\t{'enabled' if source.enabled else 'paused'}\t"
               f"{source.url}")


@harvest_group.command("delete")
@click.argument("source_id")
@click.option("--withdraw-datasets", is_flag=True,
              help="Withdraw the source's datasets too (else they stay published, sourceless).")
@click.pass_context
@handle_errors
def harvest_delete(ctx: click.Context, source_id: str, withdraw_datasets: bool) -> None:
    """Delete a registered source; its run history is kept."""
    with _runtime(ctx) as rt:
        done = rt.harvest.delete_source(CLI_IDENTITY, source_id,
                                        withdraw_datasets=withdraw_datasets)
        _drain_quietly(rt)
    click.echo(f"deleted source {done['id']}: {done['datasets_withdrawn']} dataset(s) "
               f"withdrawn, {done['datasets_released']} left published with no source")


@harvest_group.command("run")
@click.argument("source_id")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def harvest_run(ctx: click.Context, source_id: str, dry_run: bool, as_json: bool) -> None:
    """Run a registered source now."""
    with _runtime(ctx) as rt:
        report = rt.harvest.run_source(
            CLI_IDENTITY, source_id, dry_run=dry_run, progress=_progress_printer()
        )
        _drain_quietly(rt)
    _print_report(report, as_json)
    if report.status != "completed":
        sys.exit(1)


@harvest_group.command("run-due")
@click.pass_context
@handle_errors
def harvest_run_due(ctx: click.Context) -> None:
    """Run every scheduled source whose time has come (for cron or systemd timers)."""
    with _runtime(ctx) as rt:
        stale = rt.harvest.mark_stale_runs()
        reports = rt.harvest.run_due(CLI_IDENTITY, progress=_progress_printer())
        _drain_quietly(rt)
    if stale:
        click.echo(f"marked {stale} interrupted run(s) as failed")
    for report in reports:
        _print_report(report, False)
    if not reports:
        click.echo("no source is due")


@harvest_group.command("runs")
@click.argument("source_id")
@click.pass_context
@handle_errors
def harvest_runs(ctx: click.Context, source_id: str) -> None:
    """Run history of a source."""
    with _runtime(ctx, with_search=False) as rt:
        for r in rt.harvest.list_runs(CLI_IDENTITY, source_id):
            counts = ", ".join(f"{k} {v}" for k, v in r.counts.items() if v)
            click.echo(
                f"{r.id}  {r.started_at:%Y-%m-%d %H:%M:%S}  {r.status:9} {counts}"
                + (f"  error: {r.error}" if r.error else "")
            )


@harvest_group.command("errors")
@click.argument("run_id")
@click.pass_context
@handle_errors
def harvest_errors(ctx: click.Context, run_id: str) -> None:
    """Per-record errors of a run."""
    with _runtime(ctx, with_search=False) as rt:
        _run, errors = rt.harvest.get_run(CLI_IDENTITY, run_id)
    for e in errors:
        click.echo(
            f"{e['severity']}: {e.get('record') or '-'}: {e['message']}"
            + (f" [{e['location']}]" if e.get("location") else "")
        )


# -- benchmarks -------------------------------------------------------------------------------
@main.group("cohorts")
def cohorts_group() -> None:
    """Cohort-feasibility counts (protected), privacy budgets and their audit log."""


def _researcher(rt: Runtime, username: str) -> Identity:
    user = rt.identities.get_user(CLI_IDENTITY, username)
    if not user.active:
        raise CatalogueError(f"{username} is deactivated")
    return Identity(user_id=user.id, username=user.username, role=user.role,
                    organisation_id=user.organisation_id)


@cohorts_group.command("count")
@click.argument("question", type=click.File("r"))
@click.option("--as", "username", required=True,
              help="The researcher asking (their budget is charged, the question audited).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole JSON answer.")
@click.pass_context
@handle_errors
def cohorts_count(ctx: click.Context, question: Any, username: str, as_json: bool) -> None:
    """Count a cohort: QUESTION is a JSON file (or - for stdin) as POST /api/v1/cohorts/count
    takes it. The same disclosure control applies as through the API."""
    try:
        body = json.load(question)
    except ValueError as exc:
        raise CatalogueError(f"the question is not valid JSON: {exc}") from None
    with _runtime(ctx) as rt:
        answer = rt.cohorts.count(_researcher(rt, username), body)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    total = answer["total"]
    click.echo(f"total: subjects {total['subjects']['display']}, "
               f"studies {total['studies']['display']}")
    dims = answer["group_by"]
    for group in answer["groups"]:
        if group["subjects"]["suppressed"] and group["studies"]["suppressed"]:
            continue
        label = ", ".join(f"{d}={group[d]}" for d in dims)
        click.echo(f"  {label}: subjects {group['subjects']['display']}, "
                   f"studies {group['studies']['display']}")
    suppressed = sum(1 for g in answer["groups"] if g["subjects"]["suppressed"]
                     and g["studies"]["suppressed"])
    if suppressed:
        click.echo(f"  ({suppressed} groups below the floor not shown)")
    budget = answer["budget"]["researcher"]
    click.echo(f"charged ε {answer['parameters']['charged']}; budget left "
               f"{budget['remaining']} of {budget['limit']}")


@cohorts_group.command("budget")
@click.argument("username")
@click.pass_context
@handle_errors
def cohorts_budget(ctx: click.Context, username: str) -> None:
    """Show a researcher's (and their organisation's) remaining privacy budget."""
    with _runtime(ctx, with_search=False) as rt:
        click.echo(json.dumps(rt.cohorts.budget(_researcher(rt, username)), indent=2))


@cohorts_group.command("reset")
@click.option("--user", "username", default=None)
@click.option("--org", "organisation_id", default=None)
@click.option("--reason", default=None)
@click.pass_context
@handle_errors
def cohorts_reset(ctx: click.Context, username: str | None, organisation_id: str | None,
                  reason: str | None) -> None:
    """Start a researcher's or an organisation's budget afresh (audited)."""
    with _runtime(ctx, with_search=False) as rt:
        rt.cohorts.reset(CLI_IDENTITY, username=username, organisation_id=organisation_id,
                         reason=reason)
    click.echo(f"reset the budget of {username or organisation_id}")


@cohorts_group.command("queries")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--user", "username", default=None)
@click.pass_context
@handle_errors
def cohorts_queries(ctx: click.Context, limit: int, username: str | None) -> None:
    """The audit log of count questions, newest first."""
    with _runtime(ctx, with_search=False) as rt:
        rows = rt.cohorts.queries(CLI_IDENTITY, limit=limit, username=username)
    for row in rows:
        click.echo(f"{row['id']:>6} {row['at']:%Y-%m-%d %H:%M:%S} {row['username'] or '-':16} "
                   f"{row['outcome']:9} ε {row['epsilon']:<5} cells {row['cells']:<5} "
                   f"{(row['question_hash'] or '')[:12]}")


@main.group("export")
def export_group() -> None:
    """The catalogue as DCAT-AP for other data spaces (the same content as /dcat/catalog)."""


@export_group.command("dcat")
@click.option("--format", "fmt", default="turtle", show_default=True,
              help="turtle|ttl, rdfxml|rdf, jsonld, nt")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="-",
              show_default=True, help="File to write ('-': standard output).")
@click.option("--modified-since", default=None,
              help="ISO 8601: only datasets changed since, withdrawn ones as deleted records.")
@click.option("--organisation", default=None, help="Only this provider's datasets.")
@click.pass_context
@handle_errors
def export_dcat(ctx: click.Context, fmt: str, output: str, modified_since: str | None,
                organisation: str | None) -> None:
    """Write the whole catalogue as one DCAT-AP document, streamed page by page (memory does
    not grow with the catalogue)."""
    from catalogue.dcat.export import UnknownFormat, choose_format
    from catalogue.errors import ValidationError
    from catalogue.services.export import parse_instant
    from catalogue.store.exports import Selection

    try:
        name = choose_format(fmt)
    except UnknownFormat as exc:
        raise click.BadParameter(str(exc), param_hint="--format") from None
    try:
        since = parse_instant(modified_since, "modified_since")
    except ValidationError as exc:
        raise click.BadParameter(exc.message, param_hint="--modified-since") from None
    with _runtime(ctx, with_search=False) as rt:
        chunks = rt.export.dump(name, Selection(since=since, organisation=organisation))
        if output == "-":
            stream = click.get_binary_stream("stdout")
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
        else:
            with open(output, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)


@main.group("bench", invoke_without_command=True)
@click.option("--scale", type=click.Choice(["quick", "standard", "full"]), default="standard",
              show_default=True, help="Sizes: quick (minutes), standard, full (the issues' "
              "sizes; hours on 2 cores).")
@click.option("--only", default=None,
              help="Comma-separated: harvest,fhir,omop,indexing,search,cohorts,export,load.")
@click.option("--set", "overrides", multiple=True, metavar="BENCH.SIZE=N",
              help="Override one size of the scale, e.g. --set harvest.datasets=200 "
              "(repeatable).")
@click.option("--out", "--json", "out", default=None,
              help="Where to write the JSON results (default bench-results/all.json).")
@click.pass_context
@handle_errors
def bench_group(ctx: click.Context, scale: str, only: str | None, overrides: tuple[str, ...],
                out: str | None) -> None:
    """Benchmarks, reported as ratios against baselines measured in the same run. Without a
    subcommand: every benchmark, one summary table and one JSON file; exits 1 if any failed."""
    # SIGTERM unwinds (finally blocks stop the benchmark's PostgreSQL and servers); the
    # previous handler is back when the command ends (it may run inside another program)
    import threading

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _bench_sigterm)
        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))
    if ctx.invoked_subcommand is not None:
        return
    from catalogue.bench import all as every

    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    sizes: dict[str, dict[str, Any]] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        bench, _, size = key.partition(".")
        try:
            sizes.setdefault(bench.strip(), {})[size.strip()] = (
                float(value) if "." in value else int(value))
        except ValueError:
            raise click.BadParameter(f"{item!r} is not BENCH.SIZE=NUMBER",
                                     param_hint="--set") from None
    try:
        report = every.run(scale, names, lambda: _bench_runtime(False),
                           progress=lambda m: click.echo(m, err=True), sizes=sizes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only/--set") from None
    for line in every.table(report):
        click.echo(line)
    path = Path(out or "bench-results/all.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": "all", **report}, indent=2, default=str))
    click.echo(f"(written to {path})")
    if report["failed"]:
        click.echo(f"failed: {', '.join(report['failed'])}", err=True)
        sys.exit(1)


def _bench_sigterm(signum: int, frame: Any) -> None:
    """The first SIGTERM unwinds (cleanup runs) and the command exits 143, not 0."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminate(128 + signum)


@contextmanager
def _bench_runtime(keep: bool, folder: str | None = None) -> Iterator[Runtime]:
    """A throw-away catalogue (embedded PostgreSQL and tantivy in a temp folder) unless
    CATALOGUE_DATABASE_URL is set, or the catalogue in ``folder`` (kept)."""
    import shutil
    import tempfile

    if folder is not None:
        keep = True
    else:
        folder = tempfile.mkdtemp(prefix="catalogue-bench-")
    if keep:
        click.echo(f"data folder: {folder}", err=True)
    config = load_config(data_dir=folder)
    setup_logging("WARNING", config.log_format)
    runtime = Runtime(config)
    try:
        runtime.start()
        yield runtime
    finally:
        runtime.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _report(name: str, figures: dict[str, Any], out: str | None) -> None:
    width = max(len(k) for k in figures)
    click.echo(f"benchmark: {name}")
    for key, value in figures.items():
        click.echo(f"  {key:{width}}  {value}")
    path = out or f"bench-results/{name}.json"
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"benchmark": name, **figures}, indent=2, default=str))
    click.echo(f"(written to {path})")


@bench_group.command("load")
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Concurrent clients (keep-alive connections).")
@click.option("--duration", type=click.FloatRange(1, 600), default=60.0, show_default=True,
              help="Seconds of load.")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Worker threads of the `catalogue serve` under test, per process.")
@click.option("--processes", type=click.IntRange(1, 64), default=None,
              help="Processes of the `catalogue serve` under test  [default: one per CPU].")
@click.option("--think", "think_ms", type=click.FloatRange(0, 60_000), default=500.0,
              show_default=True,
              help="Mean think time per client between requests, ms (exponential): the "
                   "paced run the latency targets are judged on; 0 is a closed loop at "
                   "saturation (capacity).")
@click.option("--datasets", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--subjects", type=click.IntRange(min=10), default=50_000, show_default=True)
@click.option("--studies", type=click.IntRange(min=10), default=150_000, show_default=True)
@click.option("--providers", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder.")
@click.pass_context
@handle_errors
def bench_load(ctx: click.Context, clients: int, duration: float, workers: int,
               processes: int | None, think_ms: float, datasets: int, subjects: int,
               studies: int, providers: int, seed: int, out: str | None, keep: bool) -> None:
    """Load test: N clients mixing searches, web pages, cohort counts and DCAT pages against a
    real `catalogue serve` on loopback (synthetic catalogue); fails on any error."""
    from catalogue.bench import load
    from catalogue.bench.synthetic import Spec

    spec = Spec(providers=providers, countries=min(15, providers), datasets=datasets,
                subjects=subjects, studies=studies, seed=42 + seed)
    figures = load.run(spec, clients=clients, duration=duration, workers=workers, seed=seed,
                       keep=keep, progress=lambda m: click.echo(m, err=True),
                       processes=processes, think_ms=think_ms)
    for line in load.table(figures):
        click.echo(line)
    _report("load", figures, out)
    if figures["errors"]:
        raise CatalogueError(f"the load test saw {figures['errors']} failed requests")


@bench_group.command("harvest")
@click.option("--datasets", type=int, default=10_000, show_default=True)
@click.option("--page-size", type=int, default=100, show_default=True)
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder.")
@click.pass_context
@handle_errors
def bench_harvest(
    ctx: click.Context, datasets: int, page_size: int, out: str | None, keep: bool
) -> None:
    """Harvest a generated catalogue over loopback HTTP vs parsing alone."""
    from catalogue.bench import harvest

    with _bench_runtime(keep) as rt:
        figures = harvest.run(rt, datasets=datasets, page_size=page_size)
    _report("harvest", figures, out)


@bench_group.command("fhir")
@click.option("--patients", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Size of the generated population (ignored with --source).")
@click.option("--source", default=None, type=click.Path(exists=True, file_okay=False),
              help="A folder of Bulk Data NDJSON files (e.g. from scripts/synthea.py).")
@click.option("--lean", is_flag=True,
              help="Generate lean resources (one instance listed per series, no extensions) "
                   "instead of realistic ones.")
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder.")
@click.pass_context
@handle_errors
def bench_fhir(ctx: click.Context, patients: int, source: str | None, lean: bool,
               out: str | None, keep: bool) -> None:
    """FHIR NDJSON ingest vs fhir.resources validating the same resources alone."""
    from catalogue.bench import fhir

    with _bench_runtime(keep) as rt:
        figures = fhir.run(rt, patients=patients, source=source, realistic=not lean)
    _report("fhir", figures, out)


@bench_group.command("omop")
@click.option("--rows", type=click.IntRange(min=1000), default=1_000_000, show_default=True,
              help="image_occurrence rows generated in the source CDM.")
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder.")
@click.pass_context
@handle_errors
def bench_omop(ctx: click.Context, rows: int, out: str | None, keep: bool) -> None:
    """OMOP ingest of generated image_occurrence rows vs a plain cursor scan of them."""
    from catalogue.bench import omop

    with _bench_runtime(keep) as rt:
        figures = omop.run(rt, rows=rows, progress=lambda message: click.echo(message, err=True))
    _report("omop", figures, out)


@bench_group.command("cohorts")
@click.option("--subjects", type=click.IntRange(min=100), default=1_000_000, show_default=True)
@click.option("--studies", type=click.IntRange(min=100), default=3_000_000, show_default=True)
@click.option("--datasets", type=click.IntRange(min=1), default=1_000, show_default=True)
@click.option("--providers", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--queries", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder.")
@click.option("--reuse", default=None, type=click.Path(exists=True, file_okay=False),
              help="The data folder of a kept run: ask the questions again on its population "
              "(no generation, no indexing).")
@click.pass_context
@handle_errors
def bench_cohorts(ctx: click.Context, subjects: int, studies: int, datasets: int,
                  providers: int, queries: int, seed: int, out: str | None, keep: bool,
                  reuse: str | None) -> None:
    """Cohort counts through the API vs the bare engine request, on a generated population."""
    from catalogue.bench import cohorts
    from catalogue.bench.synthetic import Spec

    spec = Spec(providers=providers, countries=min(15, providers), datasets=datasets,
                subjects=subjects, studies=studies, seed=seed)
    with _bench_runtime(keep, reuse) as rt:
        figures = cohorts.run(rt, spec, queries=queries, seed=seed, reuse=reuse is not None,
                              progress=lambda m: click.echo(m, err=True))
    _report("cohorts", figures, out)


@bench_group.command("indexing")
@click.option("--datasets", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--subjects", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=2_000, show_default=True,
              help="Documents per bulk call (rebuild and engine alone).")
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder.")
@click.pass_context
@handle_errors
def bench_indexing(ctx: click.Context, datasets: int, subjects: int, batch: int,
                   out: str | None, keep: bool) -> None:
    """Index rebuild (datasets and subjects) vs the engine's bulk calls alone on the same
    documents."""
    from catalogue.bench import indexing

    with _bench_runtime(keep) as rt:
        figures = indexing.run(rt, datasets=datasets, subjects=subjects, batch=batch,
                               progress=lambda m: click.echo(m, err=True))
    _report("indexing", figures, out)


@bench_group.command("search")
@click.option("--datasets", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--queries", type=click.IntRange(min=1), default=200, show_default=True,
              help="Per query type.")
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder and the indices.")
@click.pass_context
@handle_errors
def bench_search(ctx: click.Context, datasets: int, queries: int, out: str | None,
                 keep: bool) -> None:
    """Load, bulk-index and search a realistic corpus: API vs engine latencies."""
    import os

    from catalogue.bench import search

    # on a search cluster, indices of their own: never the catalogue's aliases
    os.environ.setdefault("CATALOGUE_SEARCH_INDEX_PREFIX", "catalogue-bench-")
    with _bench_runtime(keep) as rt:
        figures = search.run(rt, datasets=datasets, queries=queries, cleanup=not keep,
                             progress=lambda message: click.echo(message, err=True))
    _report("search", figures, out)


@bench_group.command("export")
@click.option("--datasets", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--small", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Catalogue size of the first memory measurement.")
@click.option("--page-size", type=click.IntRange(min=1, max=1000), default=1000,
              show_default=True)
@click.option("--sample", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Datasets whose prepared graphs the serializer baseline serialises.")
@click.option("--json", "out", default=None, help="Where to write the JSON results.")
@click.option("--keep", is_flag=True, help="Keep the temporary data folder.")
@click.pass_context
@handle_errors
def bench_export(ctx: click.Context, datasets: int, small: int, page_size: int, sample: int,
                 out: str | None, keep: bool) -> None:
    """Export the catalogue as DCAT-AP over HTTP in every format (cold and warm) vs Oxigraph
    serialising the same per-dataset graphs alone; peak RSS of a whole-catalogue dump, small
    vs full."""
    from catalogue.bench import export

    with _bench_runtime(keep) as rt:
        figures = export.run(rt, datasets=datasets, small=small, page_size=page_size,
                             sample=sample, progress=lambda m: click.echo(m, err=True))
    click.echo(export.table(figures), err=True)
    _report("export", figures, out)


if __name__ == "__main__":  # pragma: no cover
    main()
