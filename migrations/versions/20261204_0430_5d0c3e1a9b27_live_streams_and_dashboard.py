"""live streams and the dashboard: order_event NOTIFY (each committed event wakes the live streams
of the API processes; channel `order_event`, payload the order's id; SQLite streams poll instead),
and an index on order_event (type, occurred_at) for the dashboard's figures

Revision ID: 5d0c3e1a9b27
Revises: f198fa65b463
Create Date: 2026-12-04 04:30:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5d0c3e1a9b27"
down_revision: str | None = "f198fa65b463"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION order_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('order_event', NEW.order_id::text);
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_index(op.f("ix_order_event_type_occurred_at"), "order_event", ["type", "occurred_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)
        op.execute(
            "CREATE TRIGGER order_event_notify AFTER INSERT ON order_event"
            " FOR EACH ROW EXECUTE FUNCTION order_event_notify()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER order_event_notify ON order_event")
        op.execute("DROP FUNCTION order_event_notify()")
    op.drop_index(op.f("ix_order_event_type_occurred_at"), table_name="order_event")
