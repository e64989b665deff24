"""The Ed25519 key pair that signs an organization's approved pin set (`km pins sync` checks it).

One key pair per organization, made on first use and kept in the database (``pin_signing_keys``):
a client that pinned the public key (on its first `km pins sync`) accepts only pin sets signed
with the private one, so neither a server impersonating the team server nor anyone altering the
answer on the way can hand developers other definitions.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from ..store.db import upsert
from ..store.schema import pin_signing_keys

ALGORITHM = "Ed25519"


def fingerprint(public_key: bytes) -> str:
    """How people compare keys: ``SHA256:`` and the hex digest of the raw public key."""
    return "SHA256:" + hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    public: bytes
    """The raw 32-byte public key."""

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public).decode()

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data)).decode()


def signing_key(engine: Engine, org_id: str) -> SigningKey:
    """The organization's key pair, made (once, whatever the number of server processes) when
    first needed."""
    with engine.connect() as conn:
        row = conn.execute(select(pin_signing_keys).where(pin_signing_keys.c.org_id == org_id)).first()
    if row is None:
        new = Ed25519PrivateKey.generate()
        pem = new.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        raw = new.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        with engine.begin() as conn:
            stmt = upsert(conn, pin_signing_keys).values(
                org_id=org_id,
                algorithm=ALGORITHM,
                private_key=pem,
                public_key=base64.b64encode(raw).decode(),
                created_ns=time.time_ns(),
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["org_id"]))
        with engine.connect() as conn:  # another process may have been first: its key wins
            row = conn.execute(select(pin_signing_keys).where(pin_signing_keys.c.org_id == org_id)).one()
    private = serialization.load_pem_private_key(row.private_key.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return SigningKey(private, base64.b64decode(row.public_key))
