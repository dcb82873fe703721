"""jobwire's settings: the only place that reads the environment.

Every setting has a default that works on one machine, so `jobwire run` starts with no
configuration; an operator changes what differs with `JOBWIRE_*` variables (nested with `__`,
e.g. `JOBWIRE_KAFKA__BOOTSTRAP_SERVERS`) or a `.env` file in the working directory.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Literal

from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseModel):
    """Where events come from and where undecodable ones go."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    postings_topic: str = Field("jobs.postings", description="Topic of job-posting events.")
    articles_topic: str = Field("news.articles", description="Topic of article events.")
    dead_letter_topic: str = Field(
        "jobwire.dead-letter", description="Where malformed events go, with the reason."
    )
    group_id: str = Field(
        "jobwire", description="Consumer group; add instances with the same id to scale out."
    )
    auto_offset_reset: Literal[
        "earliest",
        "latest",
    ] = Field("earliest", description="Where a new consumer group starts reading.")
    create_topics: bool = Field(
        True, description="Create the three topics at start-up when they do not exist yet."
    )
    topic_partitions: int = Field(
        3, ge=1, description="Partitions of topics jobwire creates: the most useful instances."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replicas of topics jobwire creates (use 3 on a real cluster)."
    )
    batch_max_records: int = Field(
        5000,
        ge=1,
        description="Most events handled per batch, when they are waiting: a batch is one "
        "write and one commit, so big batches are what let a consumer that fell behind catch up.",
    )
    batch_max_rows: int = Field(
        50_000,
        ge=1,
        description="Rows (events and their alerts) a batch aims to write at most: when events "
        "match many subscriptions each, batches hold fewer of them, so one write stays short.",
    )
    commit_interval_ms: int = Field(
        100,
        ge=0,
        description="Longest a recorded batch's offsets wait to be committed with the next "
        "batches' (0: after every batch). Fewer commits leave Kafka and jobwire more time for "
        "events; a restart reads at most this much again, which the ledger makes harmless.",
    )
    batch_timeout_ms: int = Field(
        500, ge=1, description="Longest wait for a batch to fill before handling what came."
    )
    fetch_min_bytes: int = Field(
        1,
        ge=1,
        description="Bytes of events the broker gathers for a fetch before answering, waiting "
        "at most FETCH_MAX_WAIT_MS (1: answer as soon as one event is there). Under sustained "
        "load, 16384 with a wait of 10 ms reads more events a fetch and keeps up better, for "
        "up to that wait more on each alert when events are few (docs/performance.md).",
    )
    fetch_max_wait_ms: int = Field(
        500,
        ge=1,
        le=10_000,  # under aiokafka's request timeout (40 s), with room
        description="Longest the broker holds a fetch for FETCH_MIN_BYTES, or for any event "
        "at all when none has come: lower it only with FETCH_MIN_BYTES raised.",
    )
    # Validators below check these in declaration order: each sees the ones above it.
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT (a username and password) or SASL_SSL "
        "(both, as managed Kafka services ask).",
    )
    sasl_mechanism: SaslMechanism = Field(
        "PLAIN",
        description="How SASL_* send the username and password: PLAIN, SCRAM-SHA-256 or "
        "SCRAM-SHA-512.",
    )
    sasl_username: str = Field(
        "",
        validate_default=True,
        description="SASL username (an API key on Confluent Cloud); needed with SASL_*.",
    )
    sasl_password: SecretStr | None = Field(
        None,
        validate_default=True,
        description="SASL password (an API secret on Confluent Cloud); needed with SASL_*.",
    )
    ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA that signed the brokers' certificates, for SSL and "
        "SASL_SSL (unset: the system's CAs).",
    )
    ssl_certfile: Path | None = Field(
        None,
        description="PEM file of jobwire's client certificate, for brokers that ask for one "
        "(mutual TLS, as Aiven does by default).",
    )
    ssl_keyfile: Path | None = Field(
        None,
        validate_default=True,
        description="PEM file of that certificate's private key, unencrypted (unset: in "
        "SSL_CERTFILE).",
    )

    @field_validator("sasl_username")
    @classmethod
    def _username_with_sasl(cls, value: str, info: ValidationInfo) -> str:
        protocol = info.data.get("security_protocol")
        if protocol is None:
            return value  # security_protocol itself is invalid; that error is enough
        if protocol.startswith("SASL_") and not value:
            raise ValueError(f"needed with JOBWIRE_KAFKA__SECURITY_PROTOCOL={protocol}")
        if value and not protocol.startswith("SASL_"):
            raise ValueError(
                f"not used with JOBWIRE_KAFKA__SECURITY_PROTOCOL={protocol}: set it to "
                "SASL_SSL or SASL_PLAINTEXT, or unset this"
            )
        return value

    @field_validator("sasl_password")
    @classmethod
    def _password_with_sasl(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        protocol = info.data.get("security_protocol")
        if protocol is None:
            return value
        if protocol.startswith("SASL_") and not (value and value.get_secret_value()):
            raise ValueError(f"needed with JOBWIRE_KAFKA__SECURITY_PROTOCOL={protocol}")
        if value is not None and not protocol.startswith("SASL_"):
            raise ValueError(
                f"not used with JOBWIRE_KAFKA__SECURITY_PROTOCOL={protocol}: set it to "
                "SASL_SSL or SASL_PLAINTEXT, or unset this"
            )
        return value

    @field_validator("ssl_cafile", "ssl_certfile")
    @classmethod
    def _only_with_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("security_protocol")
        if value is not None and protocol is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"not used with JOBWIRE_KAFKA__SECURITY_PROTOCOL={protocol}, which has no TLS: "
                "set it to SSL or SASL_SSL, or unset this"
            )
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        if value is not None and info.field_name == "ssl_cafile":
            # Read now, so a wrong file stops start-up here instead of every connection later.
            try:
                ssl.create_default_context(cafile=value)
            except (ssl.SSLError, OSError):
                raise ValueError(f"{value} holds no PEM certificate") from None
        return value

    @field_validator("ssl_keyfile")
    @classmethod
    def _key_for_the_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "ssl_certfile" not in info.data:
            return value  # the certificate itself is invalid; that error is enough
        certfile = info.data["ssl_certfile"]
        if certfile is None:
            if value is not None:
                raise ValueError("set JOBWIRE_KAFKA__SSL_CERTFILE too, or unset this")
            return value
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        try:
            # A password callback, so an encrypted key is refused instead of prompted for.
            ssl.create_default_context().load_cert_chain(certfile, value, password=lambda: b"")
        except (ssl.SSLError, OSError):
            raise ValueError(
                "JOBWIRE_KAFKA__SSL_CERTFILE and this must be a PEM certificate and its "
                "unencrypted private key"
            ) from None
        return value


class StoreSettings(BaseModel):
    """The subscriptions and the delivery ledger."""

    url: str = Field(
        "sqlite+aiosqlite:///jobwire.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///FILE or "
        "postgresql+asyncpg://USER:PASSWORD@HOST/DB.",
    )
    refresh_interval_s: float = Field(
        1.0, gt=0, description="How often a running service picks up subscription changes."
    )
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Fernet keys that encrypt targets and secrets in the store; "
        "the first encrypts, all decrypt (`jobwire keys new` makes one; unset: stored plain).",
    )
    auto_migrate: bool | None = Field(
        None,
        description="Upgrade the store's schema when `jobwire run` starts (unset: on for "
        "SQLite, off for PostgreSQL, where `jobwire db upgrade` does it).",
    )

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for key in value:
                raw = key.get_secret_value() if isinstance(key, SecretStr) else str(key)
                try:
                    Fernet(raw.encode())
                except (ValueError, TypeError):
                    raise ValueError(
                        "each key must be a Fernet key (44 characters of URL-safe base64): "
                        "make one with `jobwire keys new`"
                    ) from None
        return value

    def keys(self) -> list[str]:
        return [key.get_secret_value() for key in self.encryption_keys]


class RetentionSettings(BaseModel):
    """How long the store keeps what it no longer needs; pending alerts are always kept."""

    events_days: float = Field(
        7, gt=0, description="Days every consumed event is kept (previews look this far back)."
    )
    deliveries_days: float = Field(
        30, gt=0, description="Days sent and dead alerts stay in the ledger after their last try."
    )
    interval_s: float = Field(300, gt=0, description="How often old rows are looked for.")
    batch_size: int = Field(
        500, ge=1, description="Rows deleted per transaction, so pruning never blocks ingest."
    )


class DeliverySettings(BaseModel):
    """How alerts are sent, retried and given up on."""

    concurrency: int = Field(32, ge=1, description="Alerts sent at the same time, in all.")
    per_target: int = Field(
        8,
        ge=1,
        description="Alerts sent at the same time to one target URL: a chat webhook or a "
        "mail relay meets more at once with refusals.",
    )
    processes: int = Field(
        2,
        ge=0,
        le=64,
        description="Processes that send alerts beside the service's own, about one per core "
        "(0: send from the service itself).",
    )
    max_attempts: int = Field(5, ge=1, description="Attempts before an alert is marked dead.")
    backoff_base_s: float = Field(2.0, gt=0, description="First retry delay; doubles each time.")
    backoff_cap_s: float = Field(300.0, gt=0, description="Longest delay between retries.")
    poll_interval_s: float = Field(
        0.5, gt=0, description="How often the worker looks for due alerts when idle."
    )
    lease_s: float = Field(
        10.0,
        gt=0,
        description="A claimed alert's lease, renewed while it is sent; after a crash its "
        "alert is claimed again within this.",
    )
    timeout_s: float = Field(30.0, gt=0, description="Longest one send may take.")


# An operator key is tried on every request without a user key: it must not be guessable.
MIN_OPERATOR_KEY = 32


class ApiSettings(BaseModel):
    """The subscriptions API that `jobwire run` serves."""

    enabled: bool = Field(True, description="Serve the HTTP API beside the consumers.")
    host: str = Field("127.0.0.1", description="Address the API listens on (0.0.0.0: all).")
    port: int = Field(8080, ge=0, le=65535, description="Port of the API (0: any free port).")
    public_url: str = Field(
        "",
        description="How subscribers reach the API, for unsubscribe links "
        "(default: http://HOST:PORT).",
    )
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes answering the API and the pages on its port, the service's own "
        "included: more use more cores for API calls and sign-ups. Each counts its rate limits "
        "on its own, as instances do.",
    )
    operator_key: SecretStr | None = Field(
        None,
        description="API key that may manage every user's subscriptions (unset: none); at "
        f"least {MIN_OPERATOR_KEY} characters, e.g. `openssl rand -base64 32`.",
    )
    signing_secret: SecretStr | None = Field(
        None,
        description="Secret that signs unsubscribe links and the web page's form tokens (unset: "
        "one is generated once and kept in the store, shared by every instance).",
    )

    @field_validator("operator_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < MIN_OPERATOR_KEY:
            raise ValueError(
                f"the operator key must be at least {MIN_OPERATOR_KEY} characters long; "
                "make one with `openssl rand -base64 32`"
            )
        return key


# The schemes most people alert through; an operator narrows or widens the list. Each must be
# one the installed Apprise has (checked at start): Apprise dropped `msteams`, for instance.
DEFAULT_SCHEMES = (  # noqa: SIM905 - a word list reads better as words
    "mailto mailtos slack discord tgram matrix matrixs ntfy ntfys gotify gotifys "
    "mmost mmosts rocket rockets pover signal signals json jsons form forms xml xmls"
).split()


class TargetSettings(BaseModel):
    """Which notification targets users may save."""

    allowed_schemes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SCHEMES),
        description="Comma-separated Apprise schemes users may save (default: common email, "
        "chat and webhook schemes).",
        validate_default=True,
    )
    allow_private_hosts: bool = Field(
        False,
        description="Allow targets on loopback, private, link-local and metadata addresses "
        "(only for a trusted, single-user setup).",
    )
    unchecked_schemes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated allowed schemes jobwire cannot tell the destination of "
        "when a target is saved, accepted anyway (each send is still checked); see "
        "docs/security.md.",
    )

    @field_validator("allowed_schemes", "unchecked_schemes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_schemes")
    @classmethod
    def _known_to_apprise(cls, schemes: list[str]) -> list[str]:
        # A scheme Apprise does not have would refuse every target saved with it, at send time
        # and with a vaguer message; say so at start instead, where the operator is looking.
        problems = [problem for scheme in schemes if (problem := apprise_refuses(scheme))]
        if problems:
            raise ValueError("; ".join(problems))
        return schemes


def apprise_refuses(scheme: str) -> str | None:
    """Why the installed Apprise cannot send to `scheme://` targets, or None if it can."""
    import apprise  # here, not at the top: the other settings load without Apprise's plugins
    from apprise.manager_plugins import NotificationManager

    plugins = NotificationManager()  # type: ignore[no-untyped-call]
    if scheme not in plugins.schemas():  # type: ignore[no-untyped-call]
        return (
            f"Apprise {apprise.__version__} has no scheme {scheme!r} "
            "(`apprise --details` lists those it has)"
        )
    plugin = plugins[scheme]
    if not plugin.enabled:
        needs = plugin.requirements.get("packages_required") or "a package that is missing"
        return f"Apprise's {scheme!r} is disabled here: it needs {needs}"
    return None


class LimitSettings(BaseModel):
    """What one user may ask for, so one account cannot exhaust the service."""

    subscriptions_per_user: int = Field(100, ge=1, description="Subscriptions one user may own.")
    targets_per_subscription: int = Field(
        5, ge=1, le=20, description="Notify URLs one subscription may have."
    )
    values_per_field: int = Field(
        20, ge=1, le=100, description="Values in each of employers, titles, cities, exclude."
    )
    failed_auth_per_minute: float = Field(
        10,
        gt=0,
        description="Requests with a wrong API key one client address may make a minute "
        "before it gets 429 (per instance).",
    )
    tests_per_minute: float = Field(
        3, gt=0, description="Test alerts (POST .../test) one user may send a minute."
    )
    requests_per_minute: float = Field(
        600, gt=0, description="API requests one key may make a minute (per instance)."
    )
    mails_per_address_per_hour: float = Field(
        5,
        gt=0,
        description="Sign-up confirmations and sign-in links jobwire emails one address an hour "
        "(per instance).",
    )
    mail_requests_per_client_per_hour: float = Field(
        20,
        gt=0,
        description="Sign-ups and sign-in link requests one client address may make an hour "
        "(per instance).",
    )
    previews_per_minute: float = Field(
        120, gt=0, description="Live previews on the web page one client address may ask a minute."
    )
    api_keys_per_user: int = Field(10, ge=1, description="API keys one user may hold at once.")


class MailSettings(BaseModel):
    """jobwire's own email: sign-up confirmations, sign-in links, and the alerts of people who
    signed up on the web page."""

    url: SecretStr | None = Field(
        None,
        description="Apprise URL jobwire sends its own email through, with a from address and no "
        "recipient, e.g. `mailtos://USER:PASSWORD@smtp.example.com?from=jobwire@example.com` "
        "(unset: the web page cannot sign anyone up).",
    )

    @field_validator("url")
    @classmethod
    def _an_email_service(cls, url: SecretStr | None) -> SecretStr | None:
        if url is None or not url.get_secret_value().strip():
            return None
        import apprise  # as in apprise_refuses: the other settings load without its plugins

        # The recipient is added per message (service/system_mail.py); try one, so a URL Apprise
        # cannot send with stops start-up here rather than every sign-up later. Never shown.
        raw = url.get_secret_value().strip()
        probe = raw + ("&" if "?" in raw else "?") + "to=someone@example.com"
        plugin = apprise.Apprise.instantiate(probe, suppress_exceptions=True)
        if plugin is None:
            raise ValueError(
                "Apprise cannot send email with this URL once a `to=` address is added; use "
                "mailto://HOST:PORT?from=ADDRESS or mailtos://USER:PASSWORD@HOST?from=ADDRESS"
            )
        # Each message goes to one person; a recipient of the URL's own (in its path, cc= or
        # bcc=) would get every sign-in link and every web user's alerts too.
        recipients = [address for _, address in getattr(plugin, "targets", [])]
        if (
            recipients != ["someone@example.com"]
            or getattr(plugin, "cc", None)
            or getattr(plugin, "bcc", None)
        ):
            raise ValueError(
                "this URL names recipients of its own (in its path, to=, cc= or bcc=), who would "
                "receive every sign-in link and web alert; remove them: jobwire adds the one "
                "recipient of each message itself"
            )
        return url


class WebSettings(BaseModel):
    """The subscribers' web page that `jobwire run` serves beside the API."""

    enabled: bool = Field(
        True, description="Serve the web page (sign up, manage alerts) at / beside the API."
    )
    confirm_hours: float = Field(
        48, gt=0, description="Hours a sign-up waits for its confirmation link to be opened."
    )
    sign_in_minutes: float = Field(
        15, gt=0, description="Minutes an emailed sign-in link works (once)."
    )
    session_hours: float = Field(168, gt=0, description="Hours a sign-in on the web page lasts.")
    preview_days: float = Field(
        7, gt=0, description="Days of recent events the page's live preview looks back over."
    )


class TemplateSettings(BaseModel):
    """How alerts and digests look: jobwire's templates, or an operator's in their place."""

    dir: Path | None = Field(
        None,
        description="Directory of Jinja2 templates that replace jobwire's own of the same "
        "file name, any subset (docs/templates.md); each is checked at start (unset: "
        "jobwire's own).",
    )

    @field_validator("dir")
    @classmethod
    def _a_directory(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"no such directory: {value}")
        return value


class LogSettings(BaseModel):
    """What operators read."""

    format: Literal[
        "auto",
        "json",
        "console",
    ] = Field("auto", description="json lines, a console renderer, or auto (console on a TTY).")
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe level logged."
    )


class MetricsSettings(BaseModel):
    """Where Prometheus reads jobwire's metrics (`/metrics`)."""

    host: str = Field(
        "127.0.0.1",
        description="Address of /metrics when the API is off (with the API on, /metrics is "
        "served on the API's port).",
    )
    port: int = Field(
        9464, ge=0, le=65535, description="Port of /metrics when the API is off (0: any free port)."
    )
    ledger_interval_s: float = Field(
        15.0,
        gt=0,
        description="How often the ledger's alerts are counted by status for jobwire_ledger_rows "
        "(a query over the whole ledger).",
    )


class OperatorSettings(BaseModel):
    """Who is told when alerting itself fails: a target that stops working."""

    notify: SecretStr | None = Field(
        None,
        description="Apprise URL that tells the operator when a target dies and when it "
        "recovers, at most once per target a day, with the reason (unset: only the logs say so).",
    )

    @field_validator("notify")
    @classmethod
    def _apprise_can_use(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        import apprise  # here, not at the top: the other settings load without its plugins

        url = value.get_secret_value().strip()
        if not apprise.Apprise().add(url):
            raise ValueError("Apprise cannot use this URL (`apprise --details` lists the schemes)")
        return SecretStr(url)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOBWIRE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    # Made when settings are loaded, not when this module is imported: the groups' checks
    # (Apprise's plugins among them) run then, and each Settings gets groups of its own.
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    targets: TargetSettings = Field(default_factory=TargetSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    templates: TemplateSettings = Field(default_factory=TemplateSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)


class SettingsError(Exception):
    """Settings that cannot start the service; the message names each variable."""


def load_settings() -> Settings:
    """Read settings once, turning pydantic's error into one that names the variables."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = "__".join(str(part) for part in error["loc"]).upper()
            # Values of these may hold credentials, so only their names are shown; nor is a
            # whole group's input, which would show every value in it.
            sensitive = any(
                word in path for word in ("URL", "SECRET", "KEY", "PASSWORD", "NOTIFY")
            ) or isinstance(error.get("input"), dict)
            shown = "" if sensitive else f" (got {error.get('input')!r})"
            problems.append(f"JOBWIRE_{path}: {error['msg']}{shown}")
        raise SettingsError(
            "invalid settings:\n  " + "\n  ".join(problems) + "\nfix the variables above "
            "(environment or .env) and start again"
        ) from None
