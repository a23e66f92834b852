"""outbox notify only for rows: the trigger that wakes the relay fires for a statement that
inserted no outbox row too (an event's data-modifying CTE inserts the message that sends its
webhooks only when an endpoint subscribed); with the statement's new rows as a transition table it
notifies only when there is one

Revision ID: b51c0e7d2a64
Revises: 43a30f1cac54
Create Date: 2026-12-04 14:10:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b51c0e7d2a64"
down_revision: str | None = "43a30f1cac54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM inserted) THEN
        PERFORM pg_notify('outbox', '');
    END IF;
    RETURN NULL;
END $$
"""
PREVIOUS_FUNCTION = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    replace_trigger(FUNCTION, "REFERENCING NEW TABLE AS inserted ")


def downgrade() -> None:
    replace_trigger(PREVIOUS_FUNCTION, "")


def replace_trigger(function: str, referencing: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute(function)
    op.execute(
        f"CREATE TRIGGER outbox_notify AFTER INSERT ON outbox {referencing}"
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )
