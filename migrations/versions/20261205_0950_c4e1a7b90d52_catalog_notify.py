"""catalog notify: every statement that adds, changes or removes products (their names, prices or
currencies: not their stock) raises the `catalog` notification, on which the API forgets the
prices it kept for checkout (orders.catalog.PriceBook)

Revision ID: c4e1a7b90d52
Revises: 8f3a61c2d4e9
Create Date: 2026-12-05 09:50:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4e1a7b90d52"
down_revision: str | None = "8f3a61c2d4e9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION catalog_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('catalog', '');
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    # Per statement, not per row: a stock import's batch of thousands raises one.
    op.execute(
        "CREATE TRIGGER catalog_notify"
        " AFTER INSERT OR UPDATE OF name, unit_price, currency OR DELETE OR TRUNCATE ON product"
        " FOR EACH STATEMENT EXECUTE FUNCTION catalog_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER catalog_notify ON product")
    op.execute("DROP FUNCTION catalog_notify()")
