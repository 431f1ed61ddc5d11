from __future__ import annotations

import dataclasses
import hmac
from typing import Protocol

from ..errors import InvalidApiKey, MissingApiKey
from ..home import KEY_PREFIX, KeyHasher
from .permissions import UNRESTRICTED, Policy


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller and what it may do."""

    key_id: str
    name: str
    is_master: bool = False
    account_id: str | None = None
    policy: Policy = UNRESTRICTED


MASTER = Principal(key_id="master", name="master key", is_master=True)


class Authenticator(Protocol):
    def authenticate(self, token: str | None) -> Principal: ...


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_key_token(header: str | None) -> str | None:
    """The key of an `x-api-key` header (Anthropic's convention)."""
    if not header or not header.strip():
        return None
    return header.strip()


MODEL_HOST = Principal(key_id="model-host", name="worker of this gateway")


class TrustedSocketAuthenticator:
    """For the model host's unix socket (mode 0600): only this gateway's workers can connect."""

    def authenticate(self, token: str | None) -> Principal:
        return MODEL_HOST


class MasterKeyAuthenticator:
    """Accepts only the master key (the seam the full key system fills)."""

    def __init__(self, secret: bytes, master_hash: str | None) -> None:
        self._hash = KeyHasher(secret)
        self._master_hash = master_hash

    def authenticate(self, token: str | None) -> Principal:
        if token is None:
            raise MissingApiKey(
                "No API key provided. Send it as 'Authorization: Bearer pr-...'.")
        if (self._master_hash is not None and token.startswith(KEY_PREFIX)
                and hmac.compare_digest(self._hash(token), self._master_hash)):
            return MASTER
        raise InvalidApiKey("The API key is not valid.")
