"""Signed unsubscribe links: anyone holding one may pause that one subscription, nothing more.

The token is the subscription id and an HMAC of it, so no login is needed and nothing is
stored per link; a forged or altered token fails the HMAC check.

Opening a link (GET) only shows a page with a button; the button, or a mail client's one-click
unsubscribe (RFC 8058: a POST with `List-Unsubscribe=One-Click`), pauses the subscription. Link
scanners and chat unfurlers fetch every URL they see, so a GET that unsubscribed would pause
subscriptions nobody asked to pause. Emails carry the link in `List-Unsubscribe` and
`List-Unsubscribe-Post` headers (`with_unsubscribe_headers`), so a mail client shows its own
unsubscribe button.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import quote, unquote

from config.settings import ApiSettings
from service.redaction import scheme_of
from service.store import Store

SECRET_NAME = "unsubscribe-signing"


class UnsubscribeLinks:
    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def token(self, subscription_id: str) -> str:
        return f"{subscription_id}.{self._mac(subscription_id)}"

    def url(self, subscription_id: str) -> str:
        return f"{self.base_url}/unsubscribe/{self.token(subscription_id)}"

    def manage_url(self, subscription_id: str) -> str:
        """The subscription's page (its owner signs in there): where a digest too long for its
        service sends the reader for the rest, and its footer links."""
        return f"{self.base_url}/manage/subscriptions/{subscription_id}"

    def verify(self, token: str) -> str | None:
        """The subscription id a token was signed for, or None if it was not signed by us."""
        subscription_id, _, mac = token.partition(".")
        if (
            not subscription_id.isalnum()
            or not mac.isascii()
            or not hmac.compare_digest(mac.encode(), self._mac(subscription_id).encode())
        ):
            return None
        return subscription_id

    def key_for(self, purpose: str) -> bytes:
        """A key for another use (the web page's CSRF tokens), derived from this secret: one
        secret, configured or kept in the store, serves every instance, and nothing more is
        written at start. The prefix keeps it apart from every unsubscribe MAC."""
        return hmac.new(self._secret, b"key:" + purpose.encode(), hashlib.sha256).digest()

    def _mac(self, subscription_id: str) -> str:
        digest = hmac.new(
            self._secret, b"unsubscribe:" + subscription_id.encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_url(settings: ApiSettings, port: int | None = None) -> str:
    """Where subscribers reach the API: the setting, or the address it listens on."""
    if settings.public_url:
        return settings.public_url
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
    return f"http://{host}:{port or settings.port}"


async def load_links(
    settings: ApiSettings, store: Store, port: int | None = None
) -> UnsubscribeLinks:
    """Links signed with the configured secret, or with one kept in the store.

    Without a configured secret the first instance makes one and every other instance reads
    the same, so links keep working across restarts and instances.
    """
    if settings.signing_secret is not None:
        secret = settings.signing_secret.get_secret_value()
    else:
        secret = await store.secrets.get_or_create(SECRET_NAME, secrets.token_urlsafe(32))
    return UnsubscribeLinks(secret.encode(), public_url(settings, port))


# Schemes of Apprise's email plugin, which turns `+Name=value` URL parameters into headers.
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
_UNSUBSCRIBE_HEADERS = ("+list-unsubscribe", "+list-unsubscribe-post")


def with_unsubscribe_headers(url: str, link: str) -> str:
    """`url` with `List-Unsubscribe: <link>` and `List-Unsubscribe-Post: List-Unsubscribe=
    One-Click` (RFC 2369, RFC 8058) when it is an email target; other targets unchanged.

    Call it at send time: the stored target stays as the user wrote it. Headers of the same
    name the user set are replaced, so a target cannot advertise another unsubscribe address.
    """
    if scheme_of(url) not in EMAIL_SCHEMES:
        return url
    base, _, query = url.partition("?")
    kept = [
        pair
        for pair in query.split("&")
        if pair and unquote(pair.partition("=")[0]).lower() not in _UNSUBSCRIBE_HEADERS
    ]
    kept.append("%2BList-Unsubscribe=" + quote(f"<{link}>", safe=""))
    kept.append("%2BList-Unsubscribe-Post=" + quote("List-Unsubscribe=One-Click", safe=""))
    return f"{base}?{'&'.join(kept)}"
