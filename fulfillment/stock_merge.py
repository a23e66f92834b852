"""A stock import's batch merged into the catalog: new products added, changed ones updated, the
rest left alone. A row whose stock would fall below what orders have reserved is not applied and
comes back as a RowError. On PostgreSQL the batch arrives as COPY's text; on SQLite (the embedded
demo) as rows for one batched upsert."""

from typing import Any

from sqlalchemy import or_
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from orders.models import Product, table, utcnow
from orders.stock_import import RowError, StockRow

FIELDS = ("name", "unit_price", "currency", "stock_on_hand")  # what a row sets; the SKU finds it


def merge(session: Session, rows: list[StockRow], copy_text: bytes) -> list[RowError]:
    """Apply a batch's rows (one per SKU, sorted by SKU) in the caller's transaction; returns the
    rows refused for being below what is reserved."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "sqlite":
        return _merge_sqlite(session, rows)
    return _merge_postgresql(session, copy_text)


STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS stock_import_row (
    line bigint, sku text, name text, unit_price integer, currency text, stock_on_hand integer
) ON COMMIT DELETE ROWS
"""
COPY = "COPY stock_import_row (line, sku, name, unit_price, currency, stock_on_hand) FROM STDIN"
# Only imports add products: holding this lock, a batch cannot meet a product another import added
# after the batch looked (two imports at once take turns, a batch each). A batch's rows are a few
# thousand against a catalog of millions: each finds its product through the key, whatever the
# planner's estimates (without statistics on the staged rows, it scanned the whole catalog).
TAKE_TURNS = """
SELECT pg_advisory_xact_lock(7301170342);
SET LOCAL enable_hashjoin = off;
SET LOCAL enable_mergejoin = off
"""
# One look-up of each row's product: a new SKU is added with a plain INSERT (half the cost of one
# through ON CONFLICT; TAKE_TURNS makes it safe); a product the row changes is updated, in SKU
# order (the order every transaction locks products in); a row that matches its product as it
# stands is not written or locked, so a feed that repeats the catalog rewrites nothing. ON
# CONFLICT's WHERE is checked against the row as locked, so a reservation committed meanwhile is
# honoured. Answers how many changed rows that WHERE refused.
MERGE = """
WITH found AS MATERIALIZED (
    SELECT r.sku, r.name, r.unit_price, r.currency, r.stock_on_hand, q.sku IS NULL AS new
    FROM stock_import_row r LEFT JOIN product q USING (sku)
    WHERE q.sku IS NULL OR (q.name, q.unit_price, q.currency, q.stock_on_hand)
        IS DISTINCT FROM (r.name, r.unit_price, r.currency, r.stock_on_hand)
), added AS (
    INSERT INTO product
        (sku, name, unit_price, currency, stock_on_hand, stock_reserved, updated_at)
    SELECT sku, name, unit_price, currency, stock_on_hand, 0, now() FROM found WHERE new
    ORDER BY sku
), updated AS (
    INSERT INTO product AS p
        (sku, name, unit_price, currency, stock_on_hand, stock_reserved, updated_at)
    SELECT sku, name, unit_price, currency, stock_on_hand, 0, now() FROM found WHERE NOT new
    ORDER BY sku
    ON CONFLICT (sku) DO UPDATE SET
        name = EXCLUDED.name,
        unit_price = EXCLUDED.unit_price,
        currency = EXCLUDED.currency,
        stock_on_hand = EXCLUDED.stock_on_hand,
        updated_at = EXCLUDED.updated_at
    WHERE p.stock_reserved <= EXCLUDED.stock_on_hand
    RETURNING 1
)
SELECT (SELECT count(*) FROM found WHERE NOT new) - (SELECT count(*) FROM updated)
"""
# When some were refused, after the merge and in its transaction: a product still holding more than
# its row's stock was not updated (an updated one holds no more than its new stock, and
# reservations never pass it).
REFUSED = """
SELECT r.line, r.sku, r.stock_on_hand, p.stock_reserved
FROM stock_import_row r JOIN product p USING (sku)
WHERE p.stock_reserved > r.stock_on_hand
ORDER BY r.line
"""


def _merge_postgresql(session: Session, copy_text: bytes) -> list[RowError]:
    connection: Any = session.connection().connection.driver_connection  # psycopg, this transaction
    with connection.cursor() as cursor:
        cursor.execute(STAGE)
        with cursor.copy(COPY) as copy:
            copy.write(copy_text)
        cursor.execute(TAKE_TURNS)
        (refused,) = cursor.execute(MERGE).fetchone()
        below = cursor.execute(REFUSED).fetchall() if refused else []
    return [below_reserved(*row) for row in below]


def _merge_sqlite(session: Session, rows: list[StockRow]) -> list[RowError]:
    reserved: dict[str, int] = {}
    for start in range(0, len(rows), 500):
        skus = [row.sku for row in rows[start : start + 500]]
        found = session.exec(
            select(Product.sku, Product.stock_reserved).where(col(Product.sku).in_(skus))
        ).all()
        reserved |= dict(found)
    refused = [r for r in rows if reserved.get(r.sku, 0) > r.stock_on_hand]
    applied = [r for r in rows if reserved.get(r.sku, 0) <= r.stock_on_hand]
    if applied:
        now = utcnow()
        products = table(Product)
        upsert = sqlite_insert(products)
        session.exec(
            upsert.on_conflict_do_update(
                index_elements=[products.c.sku],
                set_={name: upsert.excluded[name] for name in (*FIELDS, "updated_at")},
                where=or_(*(products.c[f].is_distinct_from(upsert.excluded[f]) for f in FIELDS)),
            ),
            params=[
                {"sku": r.sku, **{f: getattr(r, f) for f in FIELDS}}
                | {"stock_reserved": 0, "updated_at": now}
                for r in applied
            ],
        )
    return [below_reserved(r.line, r.sku, r.stock_on_hand, reserved[r.sku]) for r in refused]


def below_reserved(line: int, sku: str, on_hand: int, reserved: int) -> RowError:
    return RowError(line, sku, f"stock_on_hand {on_hand} is below the {reserved} units reserved")
