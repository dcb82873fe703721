"""The form of a target that sends through jobwire's own mail, and what such targets share.

A person who signs up on the web page gets alerts by email, yet their subscription must not
hold the operator's mail URL: it carries the operator's SMTP password, which `/me/export?targets=
full` shows a user whole; a new password would leave every stored copy broken; and an operator's
relay on a private address is one the users' target policy rightly refuses. So the stored
target names the address only, in a reserved form Apprise can parse and no real server has
(`.invalid` is reserved by RFC 2606):

    mailto://jobwire@jobwire.invalid?to=ana%40example.com

`own_mail_target(address)` makes it and `own_mail_address(target)` reads it back;
service/system_mail.py sends it. Everything that shows a target shows this form, which holds
no secret. Only the address's owner may save it (the registry checks it against the address
the user confirmed).

Every such target's sends go through the operator's one mail server, which takes no more at
once than any other target (JOBWIRE_DELIVERY__PER_TARGET): `sent_via(target)` names that
server for the store, which keeps it beside each target (`targets.sent_via`), so a claim can
pass over all of them at once while the server is busy, even where their URLs are sealed.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

OWN_MAIL_PREFIX = "mailto://jobwire@jobwire.invalid?to="
# `targets.sent_via` of an own-mail target; a target whose sends share only its own URL has "".
JOBWIRE_MAIL = "jobwire-mail"


def own_mail_target(address: str) -> str:
    """The target that sends a subscription's alerts to `address` through jobwire's mail."""
    return OWN_MAIL_PREFIX + quote(address, safe="@")


def own_mail_address(target: str) -> str | None:
    """The address an own-mail target sends to; None for any other target."""
    if not target.lower().startswith(OWN_MAIL_PREFIX):
        return None
    rest = target[len(OWN_MAIL_PREFIX) :]
    if "&" in rest or "?" in rest or "/" in rest:
        return None  # the reserved form has exactly one setting: one address
    address = unquote(rest)
    return address if "@" in address and "," not in address else None


def sent_via(target: str) -> str:
    """What a target's sends go through beside its own URL: jobwire's mail, or nothing ("")."""
    return JOBWIRE_MAIL if own_mail_address(target) is not None else ""
