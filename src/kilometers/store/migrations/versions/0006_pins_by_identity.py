"""Pins keyed by what a server is, not by what it is called: ``pins.server_key`` (the SHA-256
of the server's identity) becomes the key, ``pins.info`` holds the identity and the names and
clients seen with it. Existing rows keep their pins under a key made from their name and get
no ``info``: the next session under that name takes them over (see ``security.SecurityStage``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def legacy_key(server: str) -> str:
    """The key of a pins row from before 0006 (named, identity unknown)."""
    return hashlib.sha256(b"name\0" + server.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("pins") as batch:
        batch.add_column(sa.Column("server_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("info", sa.Text(), nullable=True))
    conn = op.get_bind()
    pins = sa.table("pins", sa.column("org_id"), sa.column("server"), sa.column("server_key"))
    for org_id, server in conn.execute(sa.select(pins.c.org_id, pins.c.server)).all():
        conn.execute(
            pins.update()
            .where(pins.c.org_id == org_id, pins.c.server == server)
            .values(server_key=legacy_key(server))
        )
    with op.batch_alter_table("pins", recreate="always") as batch:
        batch.alter_column("server_key", existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint("pk_pins", type_="primary")
        batch.create_primary_key("pk_pins", ["org_id", "server_key"])


def downgrade() -> None:
    conn = op.get_bind()
    pins = sa.table(
        "pins", sa.column("org_id"), sa.column("server"), sa.column("server_key"), sa.column("updated_ns")
    )
    # one row per name again: the newest of the servers that were run under it
    rows = conn.execute(
        sa.select(pins.c.org_id, pins.c.server, pins.c.server_key).order_by(pins.c.updated_ns.desc())
    ).all()
    kept: set[tuple[str, str]] = set()
    for org_id, server, key in rows:
        if (org_id, server) in kept:
            conn.execute(pins.delete().where(pins.c.org_id == org_id, pins.c.server_key == key))
        kept.add((org_id, server))
    with op.batch_alter_table("pins", recreate="always") as batch:
        batch.drop_constraint("pk_pins", type_="primary")
        batch.create_primary_key("pk_pins", ["org_id", "server"])
        batch.drop_column("info")
        batch.drop_column("server_key")
