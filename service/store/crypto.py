"""Secrets at rest: target URLs and the signing secret, sealed with the operator's keys.

A notify URL carries passwords and tokens, so a copy of the database (a backup, a stolen disk)
would hand out every subscriber's mail password. With JOBWIRE_STORE__ENCRYPTION_KEYS set, such
values are stored as Fernet tokens (AES-128-CBC with HMAC-SHA256, from `cryptography`), marked
`fernet:`; without keys they are stored as they are, and jobwire says so at start.

Keys rotate as a list: the first seals, every one opens. Add a new key in front, restart, run
`jobwire keys rotate` (re-seals everything with it), then drop the old key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "fernet:"


def token_hash(token: str) -> str:
    """What the store keeps of an API key, a session or an emailed link: its SHA-256, so a copy
    of the database opens nothing (a key or token is random enough not to need a slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


class SecretsLocked(Exception):
    """Sealed values that the configured keys cannot open; the message says what to set."""


def new_key() -> str:
    return Fernet.generate_key().decode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class Sealer:
    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys]) if keys else None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, plain: str) -> str:
        """What to store for `plain`: a token when keys are set, else the value itself."""
        if self._fernet is None:
            return plain
        return PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, stored: str) -> str:
        """The value behind what is stored."""
        if not is_sealed(stored):
            return stored
        if self._fernet is None:
            raise SecretsLocked(
                "the store's targets and secrets are encrypted and no key is set: set "
                "JOBWIRE_STORE__ENCRYPTION_KEYS to the key(s) they were encrypted with"
            )
        try:
            return self._fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise SecretsLocked(
                "none of the keys in JOBWIRE_STORE__ENCRYPTION_KEYS opens the store's encrypted "
                "targets: add the key they were encrypted with (keys rotate as a list)"
            ) from None

    def reseal(self, stored: str) -> str:
        """`stored` sealed with the first key (plain values get sealed too); the same value
        when no keys are set."""
        if self._fernet is None:
            return stored
        if not is_sealed(stored):
            return self.seal(stored)
        try:
            token = self._fernet.rotate(stored.removeprefix(PREFIX).encode())
        except InvalidToken:
            self.open(stored)  # raises SecretsLocked, with what to set
            raise
        return PREFIX + token.decode()
