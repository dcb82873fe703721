"""Who is asking: API keys for users, and the operator who may manage everyone.

A key is shown once, when the user is created, and only its SHA-256 is stored. Keys are long
random strings, so a plain hash is enough: there is nothing to guess that a slow hash would
protect.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from service.store import Store, User
from service.store.crypto import token_hash

KEY_PREFIX = "jw_"


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of an API request or a CLI command."""

    name: str
    user_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.user_id is None

    @property
    def owner(self) -> str | None:
        """The owner to filter subscriptions by; None lets the operator see them all."""
        return self.user_id


OPERATOR = Actor(name="operator")


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


key_hash = token_hash  # an API key is kept as its hash, like every token


async def add_user(store: Store, name: str) -> tuple[User, str] | None:
    """Create a user and their key (returned once); None if the name is taken."""
    key = new_api_key()
    user = await store.accounts.add(name, key_hash(key))
    return (user, key) if user else None


async def authenticate(store: Store, key: str, operator_key: str | None) -> Actor | None:
    """The actor a key belongs to, or None for a key nobody holds."""
    if operator_key and hmac.compare_digest(key.encode(), operator_key.encode()):
        return OPERATOR
    if not key.startswith(KEY_PREFIX):
        return None
    user = await store.accounts.by_key_hash(key_hash(key))
    return Actor(name=user.name, user_id=user.id) if user else None
