"""API key material: generation, lookup hash, bcrypt hash (CONTRACT §4.1)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import bcrypt

BCRYPT_MAX_BYTES = 72
KEY_PREFIXES = ("sp_live_", "sp_test_", "sk_live_", "sk_test_")


def generate_api_key(prefix: str) -> str:
    """`<prefix><43 chars>`: URL-safe base64 (no padding) of 32 random bytes."""
    suffix = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return prefix + suffix


def lookup_hash(raw_key: str) -> str:
    """Hex SHA-256 of the full key: the indexed lookup column."""
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def hash_key(raw_key: str, cost: int) -> str:
    """bcrypt hash stored in `api_keys.key_hash`."""
    return bcrypt.hashpw(raw_key.encode(), bcrypt.gensalt(rounds=cost)).decode()


def verify_key(raw_key: str, key_hash: str) -> bool:
    """bcrypt check; False for keys bcrypt cannot take (>72 bytes) instead of raising."""
    data = raw_key.encode("utf-8", "surrogatepass")
    if len(data) > BCRYPT_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(data, key_hash.encode())
    except ValueError:
        return False


def looks_like_api_key(value: str) -> bool:
    """Cheap shape check before any database work: printable ASCII, 10..200 chars."""
    return 10 <= len(value) <= 200 and value.isascii() and value.isprintable() and " " not in value
