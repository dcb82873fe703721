"""The one place that knows which parts of a target URL are secret, and hides them.

A notify URL holds credentials in many places, and Apprise's privacy form (`url(privacy=True)`)
hides only some of them: passwords, and the tokens of the vendor plugins it knows. For the
webhook schemes (`json://`, `form://`, `xml://`, ...) it shows the path, every `+header`, every
`-param` and every query value as they are, so `Authorization: Bearer ...` leaked through it.

So a part of a URL is *public* only when it is known to be:

- the scheme, the port, and a host that is a host name or an address (a vendor "host" that is
  really a token, like Slack's `T…`, is secret);
- a user name (a password never is);
- path segments that are channels, people or phone numbers (`#jobs`, `@ana`, `+15551234567`,
  `!room`, an email address); any other segment may be a token (`/hooks/T0K3N`, ntfy topics);
- query values of settings known not to be secret (`format`, `mode`, `from`, `priority`, ...);
  every `+header`, `-param` and `:payload` value, and any other query value, is secret;
- nothing Apprise's own privacy form masks.

`mask(url)` is the form shown everywhere (API, CLI, logs, exports): built from Apprise's privacy
form, with every secret part replaced by `****` and Apprise's default parameters (`overflow=
upstream&retry=0&…`) dropped, so only what the user wrote is shown. `scrub(text, url)` removes
every secret of `url` from a text, such as an error a library raised while sending.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, quote_plus, unquote

import apprise

MASK = "****"

# Query settings whose values are configuration, not credentials; values of every other key
# (token=, apikey=, key=, secret=, pass=, ...) are masked. Keys are compared lower-cased.
PUBLIC_SETTINGS = frozenset(
    (  # noqa: SIM905 - a word list reads better as words
        "format overflow emojis tz verify rto cto redirect retry wait optional method mode "
        "priority name smtp from cc bcc reply user image avatar footer footer_logo batch status "
        "version msgtype discovery hsreq sound tags content silent preview detect timestamp "
        "blocks tts fields mdv album auth lang region charset pgp attach_as"
    ).split()
)
# Keys whose values are addresses: shown when every value is an address (`to=ana@example.com`),
# masked otherwise (`to=` is a topic for ntfy, a chat id for Telegram).
ADDRESS_SETTINGS = frozenset({"to"})
# The words before a credential in an Authorization header: no secret on their own.
AUTH_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "apikey"})
# Secrets shorter than this are masked inside a URL but not replaced in free text: replacing
# every "ab" in an error message would make it unreadable and protect little.
MIN_SCRUBBED = 3


@dataclass
class _Parts:
    """An Apprise URL cut into its parts; raw (still quoted) text, so it can be put back."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: str | None = None
    path: list[str] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)


def _split(url: str) -> _Parts:
    """Cut an Apprise URL. Not urllib: Apprise URLs use `#` literally (`slack://…/#jobs`)."""
    scheme, _, rest = url.strip().partition("://")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    parts = _Parts(scheme.lower())
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        parts.user = user
        parts.password = password if colon else None
    if netloc.startswith("["):
        host, _, after = netloc.partition("]")
        parts.host = host + "]"
        parts.port = after[1:] if after.startswith(":") else None
    else:
        host, colon, port = netloc.partition(":")
        parts.host = host
        parts.port = port if colon else None
    parts.path = [segment for segment in path.split("/") if segment] if slash else []
    for pair in query.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            parts.query.append((key, value))
    return parts


def _looks_like_host(host: str) -> bool:
    name = unquote(host).strip("[]")
    return "." in name or ":" in name or name.lower() == "localhost"


def _public_segment(segment: str) -> bool:
    text = unquote(segment)
    if text.startswith(("#", "@", "+", "!")):
        return True
    return _is_address(text)


def _is_address(text: str) -> bool:
    """An email address or a phone number: personal, but not a credential."""
    local, at, domain = text.partition("@")
    if at and local and "." in domain:
        return True
    digits = text.removeprefix("+").replace("-", "")
    return text.startswith("+") and digits.isdigit()


def _public_setting(key: str, value: str) -> bool:
    name = key.lower()
    if name.startswith(("+", "-", ":")):
        return False
    if name in PUBLIC_SETTINGS:
        return True
    if name in ADDRESS_SETTINGS:
        items = [item for item in value.replace(" ", ",").split(",") if item]
        return bool(items) and all(_public_segment(item) for item in items)
    return False


def _privacy_form(url: str) -> _Parts | None:
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return None
    return _split(str(plugin.url(privacy=True)))  # type: ignore[no-untyped-call]


@lru_cache(maxsize=4096)
def secrets(url: str) -> frozenset[str]:
    """Every secret `url` holds, unquoted: what `mask` hides and `scrub` removes."""
    parts = _split(url)
    shown = _privacy_form(url)
    found: set[str] = set()
    public: set[str] = {parts.scheme}
    if _looks_like_host(parts.host):
        public.add(unquote(parts.host).lower())

    if parts.password:
        found.add(unquote(parts.password))
        if parts.user:
            # What an HTTP client puts in an Authorization header for these credentials.
            pair = f"{unquote(parts.user)}:{unquote(parts.password)}".encode()
            found.add(base64.b64encode(pair).decode())
    if parts.user:
        if shown is not None and unquote(shown.user or "") != unquote(parts.user):
            found.add(unquote(parts.user))  # Apprise masks it: a token (pover://USER_KEY@...)
        else:
            public.add(unquote(parts.user).lower())
    if parts.host and not _looks_like_host(parts.host):
        found.add(unquote(parts.host))  # a token where a host would be (slack://T…/B…/C…)
    elif shown is not None and unquote(shown.host).lower() != unquote(parts.host).lower():
        found.add(unquote(parts.host))
    if parts.port and not parts.port.isdigit():
        found.add(unquote(parts.port))  # tgram://123:TOKEN
    for segment in parts.path:
        if _public_segment(segment):
            public.add(unquote(segment).lower())
        else:
            found.add(unquote(segment))
    for key, value in parts.query:
        text = unquote(value)
        if not text:
            continue
        if _public_setting(unquote(key), text):
            public.add(text.lower())
            continue
        found.add(text)
        # A header such as "Bearer T0K3N": its token on its own too.
        found.update(
            word
            for word in text.split()
            if len(word) >= MIN_SCRUBBED and word.lower() not in AUTH_SCHEMES
        )
    # What a public part shows anyway is no secret (a path `/hooks` under `hooks.example.com`).
    return frozenset(
        secret
        for secret in found
        if secret and not any(secret.lower() in part for part in public if part)
    )


def scheme_of(url: str) -> str:
    """A target URL's scheme, lower-cased ("" when it has none)."""
    scheme, found, _ = url.strip().partition("://")
    return scheme.lower() if found else ""


@lru_cache(maxsize=4096)
def mask(url: str) -> str:
    """The form of a target URL that is safe to show, log and store in errors."""
    url = url.strip()
    scheme = scheme_of(url) or "?"
    shown = _privacy_form(url)
    if shown is None:
        return f"{scheme}://(unparseable)"
    hidden = secrets(url)
    given = {unquote(key).lower() for key, _ in _split(url).query}

    def part(raw: str) -> str:
        return MASK if unquote(raw) in hidden else raw

    text = f"{shown.scheme}://"
    if shown.user is not None or shown.password is not None:
        text += part(shown.user or "")
        if shown.password is not None:
            text += f":{MASK}"
        text += "@"
    text += MASK if unquote(shown.host) in hidden or _hides(shown.host, hidden) else shown.host
    if shown.port:
        text += f":{shown.port}" if shown.port.isdigit() else f":{MASK}"
    if shown.path:
        text += "/" + "/".join(part(segment) for segment in shown.path)
    settings = []
    for key, value in shown.query:
        name = unquote(key)
        # Apprise writes out every default (overflow=upstream&retry=0&...); only what the user
        # set is worth showing.
        if name.lower() not in given:
            continue
        visible = _public_setting(name, unquote(value)) and unquote(value) not in hidden
        settings.append(f"{quote(name, safe='+-:_.')}={value if visible else MASK}")
    if settings:
        text += "?" + "&".join(settings)
    # Last line of defence: whatever a plugin's privacy form let through is cut out here.
    return _replace(text, hidden, everywhere=False)


def _hides(raw: str, hidden: frozenset[str]) -> bool:
    text = unquote(raw)
    return any(secret in text for secret in hidden if len(secret) >= MIN_SCRUBBED)


def scrub(text: str, url: str) -> str:
    """`text` (an error message, a log line) with every secret of `url` replaced by ****."""
    url = url.strip()
    if url and url in text:
        text = text.replace(url, mask(url))
    return _replace(text, secrets(url), everywhere=True)[:1000]


def shown_error(error: str | None, url: str) -> str | None:
    """A stored error of a send to `url`, to show anyone: scrubbed of the target's secrets
    when it was written, and again here for rows an older jobwire wrote before it did."""
    return scrub(error, url) if error else None


def _replace(text: str, hidden: frozenset[str], everywhere: bool) -> str:
    forms: set[str] = set()
    for secret in hidden:
        if len(secret) < MIN_SCRUBBED and everywhere:
            continue
        forms.update({secret, quote(secret, safe=""), quote(secret), quote_plus(secret)})
    for form in sorted(forms, key=len, reverse=True):
        if form and (everywhere or len(form) >= MIN_SCRUBBED):
            text = text.replace(form, MASK)
    return text
