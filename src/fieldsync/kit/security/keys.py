"""Ed25519 key pairs for access tokens.

The signing key stays with the api service; every other service needs only the
public key. Key ids are RFC 7638 JWK thumbprints, so they follow from the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of an Ed25519 public key (its JWK `crv`, `kty`, `x`)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"))
    return _b64url(hashlib.sha256(jwk.encode()).digest())


@dataclass(frozen=True)
class VerificationKey:
    """A public key and its id."""

    key_id: str
    public_key: Ed25519PublicKey


@dataclass(frozen=True)
class SigningKey:
    """A private key, its id and its public half."""

    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def verification(self) -> VerificationKey:
        """The public half, for verifiers."""
        return VerificationKey(self.key_id, self.private_key.public_key())


class KeyFileError(ValueError):
    """A key file is missing or is not an Ed25519 key in PEM."""


def load_signing_key(path: Path) -> SigningKey:
    """Read an Ed25519 private key (PKCS#8 PEM)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read the signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return SigningKey(thumbprint(key.public_key()), key)


def load_verification_key(path: Path) -> VerificationKey:
    """Read an Ed25519 public key (SubjectPublicKeyInfo PEM)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read the verification key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 public key")
    return VerificationKey(thumbprint(key), key)


def ensure_signing_key(directory: Path) -> Path:
    """The embedded mode's key: generated once into `directory`, readable by the owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "jwt-ed25519.pem"
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
    return path


def public_pem(key: VerificationKey) -> bytes:
    """The public key in PEM, for configuring other services."""
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
