"""A message made to fit one target: the format its service shows, within its length limits.

Format. Markdown where Apprise says the service takes it (Slack, Discord, Telegram, Matrix,
Pushover, JSON/form/XML webhooks, …), else HTML where it takes that (email: Apprise sends
multipart/alternative, HTML and a text part it derives from the HTML), else plain text
(ntfy, Gotify, Mattermost, Signal, …). A `?format=` the user put in the target URL wins, as
Apprise's `resolve_format` decides.

Limits. A service's `title_maxlen` and `body_maxlen`, and how Apprise applies them (a title
folded into the body where the service has no title field, or counted against it; the service's
own Markdown dialect; Matrix's estimate of a whole event), are measured as Apprise 2.3.0
prepares a send (see `measure`). A message that does not fit is shortened on whole units: a digest
keeps as many of its entries as fit, newest first, and says "…and N more: LINK"; an article
alert shortens its summary between words with "…". Only when that is not enough (the fixed
parts alone are too long) is the body itself cut, between words, with "…". So Apprise's
overflow handling never has anything to do: the notifier sends with `overflow=upstream`, and a
message that somehow still did not fit would be refused by the service (a failed delivery,
retried and recorded) rather than cut mid-word or split into parts. (Apprise's own `split`
and `truncate` are no help here: both cut inside entries, and for Matrix in 2.3.0 they size the
Markdown but compare the larger HTML made from it, splitting even short messages.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apprise import NotifyFormat
from apprise.conversion import convert_between
from apprise.plugins import NotifyBase
from apprise.plugins.matrix import NotifyMatrix
from apprise.plugins.matrix.base import MatrixWebhookMode
from apprise.plugins.matrix.e2ee import MATRIX_E2EE_SUPPORT
from apprise.plugins.matrix.sizing import body_char_limit

from service.delivery.render import markdown
from service.delivery.render.message import Message
from service.delivery.render.views import shorten_words


@dataclass(frozen=True, slots=True)
class NotifyArgs:
    """What `apprise.Apprise.notify()` is called with for one target."""

    title: str
    body: str
    body_format: NotifyFormat


def fit(message: Message, plugin: Any) -> NotifyArgs:
    """`message` as `plugin` (an Apprise plugin object) should receive it: its format, whole
    if it fits the service's limits, else shortened on whole entries or words."""
    source = _source_format(message, plugin)
    title = _fit_title(message.title, plugin)
    if source == NotifyFormat.MARKDOWN and plugin.title_maxlen <= 0:
        title = markdown.escape(title)  # folded into the Markdown body, so read as Markdown
    args = _args(message, source, title)
    if measure(plugin, args, dialect=False).fits and measure(plugin, args).fits:
        return args
    if message.shorten is not None and message.shrinkable > 0:
        best = _most_that_fits(message, plugin, source, title)
        if best is not None:
            return best
        message = message.shorten(0)
    # Plain text: the title as written, not as escaped for a Markdown body.
    return _cut(plugin, message, _fit_title(message.title, plugin))


@dataclass(frozen=True, slots=True)
class Measure:
    size: int  # characters of the body as the service gets it (its dialect, if it has one)
    limit: int  # the most it takes
    whole: bool  # the title fits its field, the body its line limit

    @property
    def fits(self) -> bool:
        return self.whole and self.size <= self.limit


def measure(plugin: Any, args: NotifyArgs, dialect: bool = True) -> Measure:
    """`args` against the service's limits, as Apprise prepares a send.

    As `NotifyBase._apply_overflow` and `_apply_dialect_overflow` do in Apprise 2.3.0: the
    body converted to the format the service resolves, the title folded into it where the
    service has no title field or counted against it where the service says so, the body's
    line limit, and the service's own Markdown dialect (skipped with `dialect=False`: a cheap
    first look, since the body must fit before conversion too); Matrix's limit is Apprise's
    estimate of the whole event (plain and formatted copies, JSON, encryption) for this body.
    """
    target = plugin.resolve_format(args.body_format)
    body = _convert(args.body_format, target, args.body).rstrip()
    title = args.title.strip()
    whole = True
    if title and plugin.title_maxlen <= 0:
        body = _fold(plugin, _convert(args.body_format, target, title), body, target)
        title = ""
    elif len(title) > plugin.title_maxlen:
        whole = False
    lines = plugin.body_max_line_count
    if lines and body.count("\n") >= lines:
        whole = False
    sized = body
    if dialect and type(plugin).dialect_convert is not NotifyBase.dialect_convert:
        sized = plugin.dialect_convert(body, target)
    limit = _body_limit(plugin, title, sized, target)
    return Measure(size=max(len(body), len(sized)), limit=limit, whole=whole)


def _most_that_fits(
    message: Message, plugin: Any, source: NotifyFormat, title: str
) -> NotifyArgs | None:
    """The message with as many units (entries) as fit, or None if none do.

    Converting to a service's dialect is slow on long bodies (Markdown to HTML: ~2 ms a KB), so
    the bound comes first from unconverted sizes (a binary search of cheap checks), and the
    exact checks below it guess from the sizes they measure: entries are of similar length, so
    two or three conversions usually find the most.
    """
    assert message.shorten is not None
    shorten = message.shorten

    def shortened(n: int) -> NotifyArgs:
        return _args(shorten(n), source, title)

    low, high, top = 0, message.shrinkable - 1, -1
    while low <= high:
        middle = (low + high) // 2
        if measure(plugin, shortened(middle), dialect=False).fits:
            top, low = middle, middle + 1
        else:
            high = middle - 1
    best, low, high, n = None, -1, top, top  # low: most known to fit; high: most that may
    for attempt in range(64):
        if low >= high:
            break
        args = shortened(n)
        measured = measure(plugin, args)
        if measured.fits:
            best, low = args, n
        else:
            high = n - 1
        if attempt < 3 and measured.whole:
            guess = n * measured.limit // max(measured.size, 1)  # proportional to the room
        else:
            guess = (low + high + 1) // 2
        n = min(high, max(low + 1, guess))
    return best


def _convert(source: NotifyFormat, target: NotifyFormat, text: str) -> str:
    converted: str = convert_between(source, target, text)  # type: ignore[no-untyped-call]
    return converted


def _fold(plugin: Any, title: str, body: str, target: NotifyFormat) -> str:
    """The body with the title in it, as Apprise writes it for a service without titles."""
    if target == NotifyFormat.HTML:
        tag = plugin.default_html_tag_id
        return f"<{tag}>{title}</{tag}><br />\r\n{body}"
    if target == NotifyFormat.MARKDOWN:
        title = title.lstrip("\r\n \t\v\f#-")
        return f"# {title}\n{body}" if title else body
    return f"{title}\r\n{body}"


def _body_limit(plugin: Any, title: str, body: str, target: NotifyFormat) -> int:
    if isinstance(plugin, NotifyMatrix) and plugin.mode == MatrixWebhookMode.DISABLED:
        # One event holds 64 KiB; rich messages carry the body twice (plain and formatted).
        limit: int = body_char_limit(  # type: ignore[no-untyped-call]
            body,
            title[: plugin.title_maxlen],
            target,
            plugin.e2ee and plugin.secure and MATRIX_E2EE_SUPPORT,
            plugin.device_id,
            plugin.escape_html,
        )
        return limit
    limit = plugin.body_maxlen
    buffer = plugin.overflow_buffer
    if not plugin.overflow_amalgamate_title:
        return int(limit)
    title_room = min(
        len(title) + plugin.overflow_max_display_count_width, plugin.title_maxlen, limit
    )
    if limit - buffer >= title_room:
        return int((limit - title_room if title else limit) - buffer)
    return int(limit - buffer)


def _source_format(message: Message, plugin: Any) -> NotifyFormat:
    """The richest of the message's formats the service takes: Markdown, then HTML, then text."""
    declared = _declared(plugin)
    wanted = NotifyFormat.TEXT
    if NotifyFormat.MARKDOWN in declared:
        wanted = NotifyFormat.MARKDOWN
    elif NotifyFormat.HTML in declared:
        wanted = NotifyFormat.HTML
    # The user's ?format= wins; only the body sent is rendered (a message renders on reading).
    resolved: NotifyFormat = plugin.resolve_format(wanted)
    if resolved == NotifyFormat.MARKDOWN and message.markdown:
        return NotifyFormat.MARKDOWN
    if resolved == NotifyFormat.HTML and message.html:
        return NotifyFormat.HTML
    return NotifyFormat.TEXT  # Apprise converts the text to whatever else the service shows


def _declared(plugin: Any) -> tuple[NotifyFormat, ...]:
    formats = plugin.notify_format
    if isinstance(formats, (list, tuple, set, frozenset)):
        return tuple(NotifyFormat(f) for f in formats)
    return (NotifyFormat(formats),)


def _args(message: Message, source: NotifyFormat, title: str) -> NotifyArgs:
    if source == NotifyFormat.MARKDOWN and message.markdown:
        return NotifyArgs(title, message.markdown, source)
    if source == NotifyFormat.HTML and message.html:
        return NotifyArgs(title, message.html, source)
    return NotifyArgs(title, message.body, NotifyFormat.TEXT)


def _fit_title(title: str, plugin: Any) -> str:
    limit = plugin.title_maxlen
    return shorten_words(title, limit) if limit > 0 else title


def _cut(plugin: Any, message: Message, title: str) -> NotifyArgs:
    """The last resort: the plain-text body cut between words, as long as still fits.

    Text, because cutting Markdown or HTML anywhere could leave a link or a tag open.
    """
    text = message.body
    best = NotifyArgs(title, shorten_words(text, 1), NotifyFormat.TEXT)
    low, high = 1, len(text)
    while low <= high:
        middle = (low + high) // 2
        candidate = NotifyArgs(title, shorten_words(text, middle), NotifyFormat.TEXT)
        if measure(plugin, candidate).fits:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best
