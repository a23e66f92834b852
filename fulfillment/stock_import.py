"""import_stock: an uploaded stock file into the catalog, batch by batch. Each batch is one short
transaction that merges its rows, keeps the rows it skipped and moves the job's offset on, so a
worker killed mid-import resumes after the last committed batch and no batch counts twice. On
PostgreSQL a batch goes in with COPY into a temporary table, then one INSERT .. ON CONFLICT; on
SQLite (the embedded demo) as one batched upsert."""

import logging
import time
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from fulfillment.runner import Context
from orders.events import record_shop_event
from orders.messages import ImportStock, enqueue
from orders.models import (
    IMPORT_ENDED,
    ImportJob,
    ImportRowError,
    ImportStatus,
    Product,
    table,
    utcnow,
)
from orders.stock_import import RowError, StockRow, latest_per_sku, read_batch

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    MORE = "more"  # this task goes on with the next batch
    HANDED_ON = "handed on"  # the next message takes the next batch
    ENDED = "ended"  # done, cancelled or failed


def import_stock(ctx: Context, job_id: uuid.UUID) -> Outcome:
    """Batches until the file ends, or for IMPORT_SLICE_S: then the last batch's transaction
    enqueues the next message, so no task runs for long and none is left without a successor."""
    hand_on_at = time.monotonic() + ctx.settings.import_slice_s
    while True:
        outcome = import_batch(ctx, job_id, last=time.monotonic() >= hand_on_at)
        if outcome is not Outcome.MORE:
            return outcome


def import_batch(ctx: Context, job_id: uuid.UUID, last: bool = False) -> Outcome:
    path = None
    with ctx.sessions() as session:
        # Locked for the batch: a second runner (a redelivered message beside the next one) waits,
        # then reads the offset this batch moved on.
        job = session.exec(
            select(ImportJob).where(ImportJob.id == job_id).with_for_update()
        ).first()
        if job is None or job.status in IMPORT_ENDED:
            return Outcome.ENDED
        path = Path(ctx.settings.import_spool_dir) / job.spool_name
        if job.cancel_requested_at is not None:
            _end(session, job, ImportStatus.CANCELLED)
            outcome = Outcome.ENDED
        else:
            outcome = _next_batch(ctx, session, job, path, last)
        ended = job.status in IMPORT_ENDED
        session.commit()
    if ended:
        path.unlink(missing_ok=True)
    return outcome


def _next_batch(ctx: Context, session: Session, job: ImportJob, path: Path, last: bool) -> Outcome:
    try:
        with path.open("rb") as file:
            batch = read_batch(file, job.bytes_done, job.lines_done, ctx.settings.import_batch_rows)
    except FileNotFoundError:
        _end(session, job, ImportStatus.FAILED, "the uploaded file is gone from the spool folder")
        return Outcome.ENDED
    refused = merge(session, batch.rows)
    errors = batch.errors + refused
    room = max(ctx.settings.import_max_error_rows - job.rows_failed, 0)
    if errors[:room]:
        session.exec(
            insert(table(ImportRowError)).values(
                [
                    {"job_id": job.id, "line": e.line, "sku": e.sku, "reason": e.reason}
                    for e in errors[:room]
                ]
            )
        )
    now = utcnow()
    job.bytes_done, job.lines_done = batch.next_offset, batch.next_line
    job.rows_done += batch.records
    job.rows_failed += len(errors)
    job.status, job.started_at, job.updated_at = ImportStatus.RUNNING, job.started_at or now, now
    if batch.at_end:
        _end(session, job, ImportStatus.DONE)
        return Outcome.ENDED
    session.add(job)
    if last:
        enqueue(session, ImportStock(job_id=job.id))
        return Outcome.HANDED_ON
    return Outcome.MORE


def _end(session: Session, job: ImportJob, status: ImportStatus, error: str | None = None) -> None:
    now = utcnow()
    job.status, job.error, job.finished_at, job.updated_at = status, error, now, now
    session.add(job)
    if status == ImportStatus.DONE:
        imported = job.rows_done - job.rows_failed
        record_shop_event(
            session,
            "catalog.imported",
            {
                "import_id": str(job.id),
                "sha256": job.sha256,
                "rows": job.rows_done,
                "imported": imported,
                "skipped": job.rows_failed,
            },
        )
    log.info(
        "stock import %s %s: %d rows, %d skipped", job.id, status, job.rows_done, job.rows_failed
    )


def merge(session: Session, rows: list[StockRow]) -> list[RowError]:
    """Upsert the rows into the catalog (name, price, currency, stock on hand); a row whose stock
    would fall below what orders have reserved is not applied. Returns those as errors."""
    latest = latest_per_sku(rows)
    if not latest:
        return []
    if session.get_bind().dialect.name == "sqlite":
        return _merge_sqlite(session, latest)
    return _merge_postgresql(session, latest)


STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS stock_import_row (
    line bigint, sku text, name text, unit_price integer, currency text, stock_on_hand integer
) ON COMMIT DELETE ROWS
"""
COPY = "COPY stock_import_row (line, sku, name, unit_price, currency, stock_on_hand) FROM STDIN"
# The staged rows are sorted by SKU (the order every transaction locks products in). ON CONFLICT's
# WHERE is checked against the row as locked, so a reservation committed meanwhile is honoured.
MERGE = """
WITH merged AS (
    INSERT INTO product AS p
        (sku, name, unit_price, currency, stock_on_hand, stock_reserved, updated_at)
    SELECT sku, name, unit_price, currency, stock_on_hand, 0, now()
    FROM stock_import_row ORDER BY sku
    ON CONFLICT (sku) DO UPDATE SET
        name = EXCLUDED.name,
        unit_price = EXCLUDED.unit_price,
        currency = EXCLUDED.currency,
        stock_on_hand = EXCLUDED.stock_on_hand,
        updated_at = EXCLUDED.updated_at
    WHERE p.stock_reserved <= EXCLUDED.stock_on_hand
    RETURNING p.sku
)
SELECT r.line, r.sku, r.stock_on_hand, p.stock_reserved
FROM stock_import_row r JOIN product p USING (sku)
WHERE NOT EXISTS (SELECT 1 FROM merged m WHERE m.sku = r.sku)
"""


def _merge_postgresql(session: Session, rows: list[StockRow]) -> list[RowError]:
    connection: Any = session.connection().connection.driver_connection  # psycopg, this transaction
    with connection.cursor() as cursor:
        cursor.execute(STAGE)
        with cursor.copy(COPY) as copy:
            for r in rows:
                copy.write_row((r.line, r.sku, r.name, r.unit_price, r.currency, r.stock_on_hand))
        cursor.execute(MERGE)
        refused = cursor.fetchall()
    return sorted((below_reserved(*row) for row in refused), key=lambda error: error.line)


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
                set_={
                    name: upsert.excluded[name]
                    for name in ("name", "unit_price", "currency", "stock_on_hand", "updated_at")
                },
            ),
            params=[
                {
                    "sku": r.sku,
                    "name": r.name,
                    "unit_price": r.unit_price,
                    "currency": r.currency,
                    "stock_on_hand": r.stock_on_hand,
                    "stock_reserved": 0,
                    "updated_at": now,
                }
                for r in applied
            ],
        )
    return [below_reserved(r.line, r.sku, r.stock_on_hand, reserved[r.sku]) for r in refused]


def below_reserved(line: int, sku: str, on_hand: int, reserved: int) -> RowError:
    return RowError(line, sku, f"stock_on_hand {on_hand} is below the {reserved} units reserved")
