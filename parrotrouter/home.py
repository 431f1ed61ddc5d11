"""The data directory: the server secret (for keyed hashes) and the master key's hash.

The master key is generated on first start, shown once, and stored only as a keyed hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

KEY_PREFIX = "pr-"
_SECRET_FILE = "server_secret"
_MASTER_FILE = "master_key.json"


def new_api_key() -> str:
    """`pr-` + 43 URL-safe random characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def display_prefix(key: str) -> str:
    return key[:10]


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@dataclasses.dataclass(frozen=True)
class MasterKeyRecord:
    key_hash: str
    prefix: str
    created_at: float


class Home:
    def __init__(self, path: Path) -> None:
        self.path = path

    def ensure(self) -> None:
        """Create the directory, private (0700), if it does not exist; an existing one is left as it is."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)

    def exposure(self) -> str | None:
        """A warning when other users may enter the directory. Its files are private (0600) either
        way; it is not tightened here, as it may be shared on purpose."""
        mode = self.path.stat().st_mode & 0o777
        if not mode & 0o077:
            return None
        return (f"the data directory {self.path} is open to other users (mode {mode:04o}); its files are "
                f"private (0600), but consider `chmod 700 {self.path}`")

    def server_secret(self) -> bytes:
        """32 random bytes, created once; keys are stored as HMAC-SHA256(secret, key)."""
        file = self.path / _SECRET_FILE
        try:
            return bytes.fromhex(file.read_text().strip())
        except FileNotFoundError:
            secret = secrets.token_bytes(32)
            try:
                fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process won the race
                return bytes.fromhex(file.read_text().strip())
            with os.fdopen(fd, "w") as f:
                f.write(secret.hex())
            return secret

    def master_key(self) -> MasterKeyRecord | None:
        try:
            data = json.loads((self.path / _MASTER_FILE).read_text())
        except FileNotFoundError:
            return None
        return MasterKeyRecord(data["key_hash"], data["prefix"], data["created_at"])

    def create_master_key(self) -> str | None:
        """Generate and store the master key if none exists; return it (the only time it is shown)."""
        if self.master_key() is not None:
            return None
        key = new_api_key()
        record = {"key_hash": hash_key(self.server_secret(), key), "prefix": display_prefix(key),
                  "created_at": time.time()}
        file = self.path / _MASTER_FILE
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        return key

    def reset_master_key(self) -> str:
        key = new_api_key()
        record = {"key_hash": hash_key(self.server_secret(), key), "prefix": display_prefix(key),
                  "created_at": time.time()}
        _write_private(self.path / _MASTER_FILE, json.dumps(record).encode())
        return key


def hash_key(secret: bytes, key: str) -> str:
    """The stored form of an API key: HMAC-SHA256 with the server secret, hex."""
    return KeyHasher(secret)(key)


class KeyHasher:
    """`hash_key` for one secret, for the request path: the keyed HMAC state is made once and
    copied per key (the `copy()` idiom of the hmac module; a third fewer instructions)."""

    def __init__(self, secret: bytes) -> None:
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def __call__(self, key: str) -> str:
        mac = self._keyed.copy()
        mac.update(key.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()
