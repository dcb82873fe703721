"""The `jobwire` command: run the service, manage subscriptions, publish and check events."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import orjson
import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings, SettingsError, load_settings
from consumers.events import describe_errors
from service.accounts import OPERATOR
from service.logs import configure_logging, quiet_library_logs
from service.registry import LimitReached, NotFound, SubscriptionRefused, SubscriptionRegistry
from service.store import DeliveryStatus, Store, StoreUnavailable, explain
from service.subscriptions import SubscriptionIn

if TYPE_CHECKING:
    from service.offline import OfflineSubscription
from service.targets import TargetPolicy

app = typer.Typer(
    help="jobwire: alerts for new job postings and articles, from Kafka to email and chat.\n\n"
    "Settings come from JOBWIRE_* environment variables or a .env file; see the README.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


class _Stderr:
    """Whatever sys.stderr is when a line is written (a test runner swaps it per command)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


@app.callback()
def _commands() -> None:
    # A command's output is what it prints on stdout (an id, a key, JSON lines); what jobwire
    # logs meanwhile (a migration, say) goes to stderr. `run` logs to stdout, as services do.
    configure_logging("auto", "INFO", _Stderr())


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"jobwire: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"jobwire: {message}", err=True)
    return typer.Exit(code)


def _registry(settings: Settings, store: Store) -> SubscriptionRegistry:
    # The CLI is the operator's tool, but it keeps the same rules as the API.
    return SubscriptionRegistry(
        store, TargetPolicy.from_settings(settings.targets), settings.limits
    )


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on the store; a store that fails says why in one line, without a traceback."""
    try:
        store = await Store.open(
            settings.store.url, settings.store.auto_migrate, settings.store.keys()
        )
    except StoreUnavailable as exc:
        raise _fail(str(exc)) from None
    try:
        return await work(store)
    except StoreUnavailable as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _fail(explain(exc, settings.store.url)) from None
    finally:
        await store.close()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@app.command()
def run() -> None:
    """Run the service: consume events, match, deliver alerts, serve the API. Ctrl-C stops it.

    The subscriptions API listens on JOBWIRE_API__HOST:JOBWIRE_API__PORT (127.0.0.1:8080),
    with its docs at /docs; JOBWIRE_API__ENABLED=false runs without it.
    """
    from service.app import run_service
    from service.delivery.render import TemplateError
    from service.web import ApiUnavailable

    settings = _settings()
    configure_logging(settings.log.format, settings.log.level)
    try:
        run_service(settings)
    except (StoreUnavailable, ApiUnavailable, TemplateError) as exc:
        raise _fail(str(exc), 1) from None


@app.command()
def subscribe(
    notify: Annotated[
        list[str],
        typer.Option(
            "--notify",
            "-n",
            help="Apprise URL to alert, e.g. 'mailto://user:pass@example.com' or "
            "'slack://T/B/C'. Repeat for several targets.",
        ),
    ],
    employer: Annotated[
        list[str] | None, typer.Option("--employer", "-e", help="Employer name. Repeatable (any).")
    ] = None,
    title: Annotated[
        list[str] | None,
        typer.Option("--title", "-t", help="Words of the job title. Repeatable (any)."),
    ] = None,
    city: Annotated[
        list[str] | None, typer.Option("--city", "-c", help="City. Repeatable (any).")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", "-x", help="Skip titles containing these words. Repeatable."),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", "-k", help="posting or article (default: both). Repeatable."),
    ] = None,
    name: Annotated[str, typer.Option(help="A name to recognise the subscription by.")] = "",
    frequency: Annotated[
        Literal["instant", "hourly", "daily", "weekly"],
        typer.Option(help="Each alert at once, or one digest an hour, a day or a week."),
    ] = "instant",
    at: Annotated[
        str, typer.Option(help="Local time of a daily or weekly digest, HH:MM.")
    ] = "08:00",
    timezone: Annotated[str, typer.Option(help="Your IANA time zone, e.g. Europe/Paris.")] = "UTC",
    weekday: Annotated[
        Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
        typer.Option(help="Day of a weekly digest."),
    ] = "monday",
    quiet: Annotated[
        str | None,
        typer.Option(
            help="Quiet hours, HH:MM-HH:MM local (e.g. 22:00-07:00): alerts then wait and go "
            "out as one digest when they end."
        ),
    ] = None,
) -> None:
    """Subscribe to postings and articles; prints the new subscription's id.

    Every field you set must match; within a field, any value may match.
    """
    settings = _settings()
    fields: dict[str, Any] = {
        "employers": employer or [],
        "titles": title or [],
        "cities": city or [],
        "exclude": exclude or [],
        "notify": notify,
        "name": name,
        "frequency": frequency,
        "at": at,
        "timezone": timezone,
        "weekday": weekday,
        "quiet_hours": quiet,
    }
    if kind:
        fields["kinds"] = kind
    try:
        spec = SubscriptionIn.model_validate(fields)
    except ValidationError as exc:
        raise _fail(f"subscription refused: {describe_errors(exc)}") from None
    try:
        created = _run(
            _with_store(settings, lambda store: _registry(settings, store).create(OPERATOR, spec))
        )
    except (SubscriptionRefused, LimitReached) as exc:
        raise _fail(f"subscription refused: {exc}") from None
    typer.echo(created.id)


@app.command()
def subscriptions(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List subscriptions. Targets are shown with their passwords and tokens masked."""
    settings = _settings()
    found = _run(_with_store(settings, lambda store: _registry(settings, store).list_for(OPERATOR)))
    for sub in found:
        public = sub.public().model_dump(mode="json")
        if as_json:
            typer.echo(orjson.dumps(public).decode())
            continue
        wants = "; ".join(
            f"{field}={', '.join(public[field])}"
            for field in ("employers", "titles", "cities", "exclude")
            if public[field]
        )
        state = "" if sub.active else " (paused)"
        typer.echo(f"{sub.id}{state}  {wants}  kinds={','.join(sub.kinds)}  {public['schedule']}")
        for target in public["notify"]:
            typer.echo(f"    -> {target}")
    if not found and not as_json:
        typer.echo("no subscriptions yet: add one with `jobwire subscribe --help`", err=True)


@app.command()
def unsubscribe(subscription_id: Annotated[str, typer.Argument(help="The id to remove.")]) -> None:
    """Remove a subscription; alerts already recorded for it are still sent."""
    settings = _settings()
    try:
        _run(
            _with_store(
                settings, lambda store: _registry(settings, store).delete(OPERATOR, subscription_id)
            )
        )
    except NotFound:
        raise _fail(
            f"no subscription {subscription_id!r}: see `jobwire subscriptions`", 1
        ) from None
    typer.echo(f"removed {subscription_id}")


@app.command()
def publish(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="JSONL: one event a line, each with a 'kind' key."
        ),
    ],
    validate: Annotated[
        bool,
        typer.Option(help="Refuse the whole file if any line is not a valid event."),
    ] = True,
) -> None:
    """Publish events to Kafka: kind 'posting' to the postings topic, 'article' to articles."""
    from consumers.publish import PublishError, publish_file

    settings = _settings()
    quiet_library_logs()
    try:
        counts = _run(publish_file(settings.kafka, file, validate=validate))
    except PublishError as exc:
        raise _fail(str(exc)) from None
    for topic, count in counts.items():
        typer.echo(f"published {count} to {topic}")


@app.command()
def match(
    subscriptions: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="JSON array of subscriptions.")
    ],
    events: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="JSONL of events with 'kind'."),
    ] = None,
    recent: Annotated[
        bool,
        typer.Option(
            "--recent",
            help="Match the events the store kept from the last days instead of a file "
            "(JOBWIRE_RETENTION__EVENTS_DAYS, default 7), newest first.",
        ),
    ] = False,
    days: Annotated[
        float | None, typer.Option(help="With --recent: look back this many days.")
    ] = None,
) -> None:
    """Check subscriptions against events, offline; prints one JSON line per match.

    With --events FILE nothing but the two files is read; with --recent the events come from
    the store, as the web preview sees them.
    """
    from service.offline import InputError, match_files, read_subscriptions

    if (events is None) == (not recent):
        raise _fail("give either --events FILE or --recent")
    try:
        if events is not None:
            pairs = match_files(subscriptions, events)
        else:
            subs = read_subscriptions(subscriptions)
            settings = _settings()
            look_back = days if days is not None else settings.retention.events_days
            pairs = _run(_with_store(settings, lambda store: _recent_pairs(store, subs, look_back)))
    except InputError as exc:
        raise _fail(str(exc)) from None
    # A digest or quiet hours are shown with the match: when it would be sent.
    schedules = {
        sub.id: schedule.describe()
        for sub in read_subscriptions(subscriptions)
        if not (schedule := sub.schedule()).is_plain
    }
    out = sys.stdout
    for event_id, subscription_id in pairs:
        line: dict[str, str] = {"event_id": event_id, "subscription_id": subscription_id}
        if subscription_id in schedules:
            line["schedule"] = schedules[subscription_id]
        out.write(orjson.dumps(line).decode() + "\n")


async def _recent_pairs(
    store: Store, subscriptions: list[OfflineSubscription], days: float
) -> list[tuple[str, str]]:
    from service.preview import recent_matches

    pairs: list[tuple[str, str]] = []
    for sub in subscriptions:
        found = await recent_matches(store, sub, days)
        pairs.extend((event.id, sub.id) for event in found)
    return pairs


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
) -> None:
    """One screen for an operator: instances in the group, lag per partition, last event,
    ledger backlog by status, dead targets. Needs no running instance. Exits 1 when Kafka or
    the store does not answer."""
    from service.operations.status import gather, render

    settings = _settings()
    quiet_library_logs()
    found = _run(gather(settings))
    if as_json:
        typer.echo(orjson.dumps(found.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(render(found))
    if not found.healthy:
        raise typer.Exit(1)


deliveries_app = typer.Typer(
    help="The delivery ledger: what was sent, what is waiting, what died and why."
)
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.callback(invoke_without_command=True)
def deliveries(
    ctx: typer.Context,
    status: Annotated[
        DeliveryStatus | None,
        typer.Option(help="Only alerts in this state."),
    ] = None,
    subscription: Annotated[str | None, typer.Option(help="Only this subscription.")] = None,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Show alerts in the ledger, newest first, targets masked."""
    if ctx.invoked_subcommand:
        return
    from service.redaction import mask

    settings = _settings()
    rows = _run(
        _with_store(settings, lambda store: store.ledger.recent(status, subscription, limit))
    )
    for row in rows:
        shown = {
            "id": row.id,
            "status": row.status,
            "subscription_id": row.subscription_id,
            "event": f"{row.event_kind}:{row.event_id}",
            "target": mask(row.target),
            "attempts": row.attempts,
            "digest": row.digest,
            "digest_id": row.digest_id,
            "created_at": row.created_at.isoformat() + "Z",
            # Scrubbed again: a row recorded by an older jobwire may hold what it did not mask.
            "last_error": row.shown_error,
        }
        if as_json:
            typer.echo(orjson.dumps(shown).decode())
        else:
            error = f"  error: {shown['last_error']}" if row.last_error else ""
            digest = ""
            if row.digest:
                digest = f" digest={row.digest_id}" if row.digest_id else " digest=(waiting)"
            typer.echo(
                f"{row.id:>6} {row.status:<8} {shown['event']:<30} attempts={row.attempts}"
                f"{digest} {shown['target']}{error}"
            )


@deliveries_app.command("retry")
def deliveries_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead alerts to send again.")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Send every dead alert again.")] = False,
) -> None:
    """Re-queue dead alerts (after fixing the target) so the worker sends them again."""
    if not ids and not dead:
        raise _fail("name the alert ids to retry, or pass --dead for all dead alerts")
    settings = _settings()
    count = _run(_with_store(settings, lambda store: store.ledger.requeue(None if dead else ids)))
    typer.echo(f"re-queued {count} alert(s)")


templates_app = typer.Typer(
    help="The templates alerts and digests are written with (JOBWIRE_TEMPLATES__DIR overrides "
    "any of them; docs/templates.md)."
)
app.add_typer(templates_app, name="templates")


@templates_app.command("check")
def templates_check() -> None:
    """Render every template with sample events; name each file and line that fails."""
    from service.delivery.render import TemplateError, check_templates

    try:
        typer.echo(check_templates(_settings().templates))
    except TemplateError as exc:
        raise _fail(str(exc), 1) from None


digests_app = typer.Typer(
    help="Digests: alerts of daily, hourly and weekly subscriptions (and quiet hours) wait in "
    "the ledger until their time, then go out as one message per subscription and target."
)
app.add_typer(digests_app, name="digests")


@digests_app.command("send-now")
def digests_send_now(
    subscription: Annotated[
        str | None, typer.Option(help="Only this subscription's digest (default: all).")
    ] = None,
) -> None:
    """Make waiting digests due now: the running service sends them within a second."""
    settings = _settings()
    count = _run(_with_store(settings, lambda store: store.ledger.send_digests_now(subscription)))
    typer.echo(f"{count} alert(s) in waiting digests are due now")


users_app = typer.Typer(
    help="API users: each gets a key for the subscriptions API and sees only their own."
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. an email address.")],
) -> None:
    """Create a user and print their API key. It is shown only this once: pass it on safely."""
    from service.accounts import add_user

    name = name.strip()
    if not name or len(name) > 64:
        raise _fail("a user name is 1 to 64 characters")
    settings = _settings()
    created = _run(_with_store(settings, lambda store: add_user(store, name)))
    if created is None:
        raise _fail(f"there is already a user {name!r}: see `jobwire users list`")
    user, key = created
    typer.echo(f"created user {user.name!r}; their API key (shown only now):", err=True)
    typer.echo(key)


@users_app.command("list")
def users_list() -> None:
    """List users (their keys are never shown again; remove and add a user to replace one)."""
    settings = _settings()
    found = _run(_with_store(settings, lambda store: store.accounts.all()))
    for user in found:
        typer.echo(f"{user.name}  created {user.created_at.isoformat(timespec='seconds')}Z")
    if not found:
        typer.echo("no users yet: add one with `jobwire users add NAME`", err=True)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="The user to remove.")]) -> None:
    """Erase a user: their key, their subscriptions and targets, and their ledger rows."""
    from service.personal_data import erase_named

    settings = _settings()
    erased = _run(_with_store(settings, lambda store: erase_named(store, name)))
    if erased is None:
        raise _fail(f"no user {name!r}: see `jobwire users list`", 1)
    typer.echo(
        f"erased {name!r}: {erased.subscriptions} subscription(s) and "
        f"{erased.deliveries} ledger row(s)"
    )


@users_app.command("export")
def users_export(
    name: Annotated[str, typer.Argument(help="The user whose data to export.")],
) -> None:
    """Print everything jobwire keeps of a user as JSON: subscriptions (targets masked) and
    the alerts sent for them. Users export their own, full targets included, at GET /me/export."""
    from service.personal_data import export_named

    settings = _settings()
    found = _run(_with_store(settings, lambda store: export_named(store, name)))
    if found is None:
        raise _fail(f"no user {name!r}: see `jobwire users list`", 1)
    typer.echo(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())


keys_app = typer.Typer(
    help="Encryption at rest: targets (with their passwords) and secrets in the store are "
    "sealed with the keys in JOBWIRE_STORE__ENCRYPTION_KEYS."
)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new() -> None:
    """Print a new key. Put it first in JOBWIRE_STORE__ENCRYPTION_KEYS (comma-separated)."""
    from service.store.crypto import new_key

    typer.echo(new_key())


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Seal every secret in the store with the first key (plain ones too). After adding a new
    key in front, run this; then the older keys can be dropped."""
    settings = _settings()
    if not settings.store.encryption_keys:
        raise _fail("set JOBWIRE_STORE__ENCRYPTION_KEYS first (`jobwire keys new` makes a key)")
    changed = _run(_with_store(settings, lambda store: store.secrets.reseal()))
    typer.echo(f"sealed {changed} secret(s) with the first key")


@keys_app.command("decrypt")
def keys_decrypt() -> None:
    """Store every secret in plain text again, e.g. to stop encrypting or before
    `jobwire db downgrade` past revision 0003. Needs the keys that sealed them."""
    settings = _settings()
    changed = _run(_with_store(settings, lambda store: store.secrets.reseal(plain=True)))
    typer.echo(f"stored {changed} secret(s) in plain text")


db_app = typer.Typer(
    help="The store's schema, managed by Alembic migrations: see where it stands, upgrade it."
)
app.add_typer(db_app, name="db")


def _db(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    settings = _settings()

    async def go() -> T:
        engine = Store.connect(settings.store.url)
        try:
            return await work(engine)
        except StoreUnavailable as exc:
            raise _fail(str(exc)) from None
        except Exception as exc:
            raise _fail(explain(exc, settings.store.url)) from None
        finally:
            await engine.dispose()

    try:
        return _run(go())
    except StoreUnavailable as exc:
        raise _fail(str(exc)) from None


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Where to go (default: the newest).")] = "head",
) -> None:
    """Upgrade the store's schema (on PostgreSQL, instances starting meanwhile wait for it).

    A store made before migrations existed is recognised and stamped, not recreated.
    Back up first: see docs/operations.md.
    """
    from service.store import migrate

    before, after = _db(lambda engine: migrate.upgrade(engine, revision))
    if before.current == after:
        typer.echo(f"the store is already at revision {after}")
    else:
        typer.echo(f"upgraded the store from {before.describe()} to revision {after}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str | None,
        typer.Argument(help="The revision to go back to (default: one step back)."),
    ] = None,
) -> None:
    """Undo migrations, e.g. before going back to an older jobwire. Back up first."""
    from service.store import migrate

    after = _db(lambda engine: migrate.downgrade(engine, revision or "-1"))
    typer.echo(f"the store is now at revision {after}")


@db_app.command("current")
def db_current() -> None:
    """Which revision the store is at, and whether this jobwire needs a newer one."""
    from service.store import migrate

    found = _db(migrate.state)
    if found.up_to_date:
        typer.echo(f"{found.current} (current)")
    elif not found.known:
        raise _fail(migrate.too_new(found), 1)
    else:
        typer.echo(
            f"{found.describe()}; this jobwire needs revision {found.head}: "
            "run `jobwire db upgrade`"
        )
        raise typer.Exit(1)


@db_app.command("history")
def db_history() -> None:
    """Every revision of the schema, newest first, with what it changes."""
    from service.store import migrate

    for script in migrate.history():
        summary = (script.doc or "").strip().splitlines()[0] if script.doc else ""
        typer.echo(f"{script.revision}  {summary}")
