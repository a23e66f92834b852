"""import_stock: an uploaded stock file into the catalog, batch by batch. Each batch is one short
transaction that merges its rows, keeps the rows it skipped and moves the job's offset on, so a
worker killed mid-import resumes after the last committed batch and no batch counts twice. How a
batch meets the catalog: `fulfillment.stock_merge`."""

import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, select

from fulfillment.runner import Context
from fulfillment.stock_merge import merge
from orders.events import record_shop_event
from orders.messages import ImportStock, enqueue
from orders.models import (
    IMPORT_ENDED,
    ImportJob,
    ImportRowError,
    ImportStatus,
    table,
    utcnow,
)
from orders.stock_import import Batch, StockRow, read_batch

log = logging.getLogger(__name__)
BACKSLASH = "\\"


class Outcome(StrEnum):
    MORE = "more"  # this task goes on with the next batch
    HANDED_ON = "handed on"  # the next message takes the next batch
    ENDED = "ended"  # done, cancelled or failed
    ELSEWHERE = "elsewhere"  # another runner moved the job on (a redelivered message): it goes on


def import_stock(ctx: Context, job_id: uuid.UUID) -> Outcome:
    """Batches until the file ends, or for IMPORT_SLICE_S: then the last batch's transaction
    enqueues the next message, so no task runs for long and none is left without a successor.
    The next batch is read and checked in a thread while this one is merged."""
    with ctx.sessions() as session:
        job = session.get(ImportJob, job_id)
        copy = session.get_bind().dialect.name != "sqlite"
    if job is None or job.status in IMPORT_ENDED:
        return Outcome.ENDED
    path = Path(ctx.settings.import_spool_dir) / job.spool_name
    hand_on_at = time.monotonic() + ctx.settings.import_slice_s
    try:
        size = ctx.settings.import_batch_rows
        for staged in read_ahead(path, job.bytes_done, job.lines_done, size, copy):
            outcome = import_batch(ctx, job_id, staged, last=time.monotonic() >= hand_on_at)
            if outcome is not Outcome.MORE:
                return outcome
    except FileNotFoundError:
        return import_batch(ctx, job_id, None)
    raise AssertionError("the file's last batch ends the job")


@dataclass(frozen=True)
class Staged:
    """A batch, and its rows to apply as PostgreSQL's COPY reads them (empty on SQLite)."""

    batch: Batch
    copy: bytes


def read_ahead(path: Path, offset: int, lines_done: int, size: int, copy: bool) -> Iterator[Staged]:
    """The file's batches from `offset`, each read, checked and (`copy`) written out for COPY in
    a thread while the one before is merged: the merge's thread runs no Python per row."""

    def stage(start: int, lines: int) -> Staged:
        batch = read_batch(file, start, lines, size)
        return Staged(batch, copy_text(batch.latest) if copy else b"")

    with path.open("rb") as file, ThreadPoolExecutor(1, "read-ahead") as reader:
        ahead = reader.submit(stage, offset, lines_done)
        while True:
            staged = ahead.result()
            batch = staged.batch
            if not batch.at_end:
                ahead = reader.submit(stage, batch.next_offset, batch.next_line)
            yield staged
            if batch.at_end:
                return


def copy_text(rows: list[StockRow]) -> bytes:
    """COPY's text format: tab-separated lines. Names hold no control characters (parse_row), so
    only a backslash needs escaping."""
    return "".join(
        f"{r.line}\t{r.sku}\t{r.name.replace(BACKSLASH, BACKSLASH * 2)}\t{r.unit_price}"
        f"\t{r.currency}\t{r.stock_on_hand}\n"
        for r in rows
    ).encode()


def import_batch(
    ctx: Context, job_id: uuid.UUID, staged: Staged | None, last: bool = False
) -> Outcome:
    """One transaction: the batch merged, its skipped rows kept, the job moved past it. `None`:
    the spool file is gone."""
    with ctx.sessions() as session:
        # Locked for the batch: a second runner (a redelivered message beside the next one) waits,
        # then finds the job moved past the batch it read, and leaves the job to the first.
        job = session.exec(
            select(ImportJob).where(ImportJob.id == job_id).with_for_update()
        ).first()
        if job is None or job.status in IMPORT_ENDED:
            return Outcome.ENDED
        if job.cancel_requested_at is not None:
            _end(session, job, ImportStatus.CANCELLED)
        elif staged is None:
            _end(
                session, job, ImportStatus.FAILED, "the uploaded file is gone from the spool folder"
            )
        elif staged.batch.offset != job.bytes_done:
            return Outcome.ELSEWHERE
        else:
            _apply(ctx, session, job, staged)
            if not staged.batch.at_end and last:
                enqueue(session, ImportStock(job_id=job.id))
        ended = job.status in IMPORT_ENDED
        spooled = Path(ctx.settings.import_spool_dir) / job.spool_name
        session.commit()
    if ended:
        spooled.unlink(missing_ok=True)
        return Outcome.ENDED
    return Outcome.HANDED_ON if last else Outcome.MORE


def _apply(ctx: Context, session: Session, job: ImportJob, staged: Staged) -> None:
    batch = staged.batch
    refused = merge(session, batch.latest, staged.copy)
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
    session.add(job)
    if batch.at_end:
        _end(session, job, ImportStatus.DONE)


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
