"""Bulk stock imports, the rules both sides share: the CSV's columns, what makes a row valid, how a
batch is read from the spooled file (from a byte offset, so an import resumes where its last
committed batch ended), and the job's bookkeeping. No framework, no database driver."""

import csv
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, NamedTuple

from sqlalchemy import update
from sqlmodel import Session, col, select

from orders.messages import ImportStock, enqueue
from orders.models import IMPORT_ENDED, ImportJob, ImportStatus, table, utcnow

COLUMNS = ("sku", "name", "unit_price", "currency", "stock_on_hand")
SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_INT = 2_147_483_647  # the columns are INTEGER
MAX_NAME = 200
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # a line break, a tab, NUL: not in a product's name
# A field longer than this is a broken quote swallowing lines, not a product name.
csv.field_size_limit(64 * 1024)


def header_problem(line: bytes) -> str | None:
    """Why the first line is not this import's header, or None."""
    try:
        text = line.decode("utf-8").removeprefix("\ufeff").strip()
    except UnicodeDecodeError:
        return "The header line is not UTF-8."
    found = [name.strip().lower() for name in next(csv.reader([text]), [])]
    if tuple(found) == COLUMNS:
        return None
    expected = ",".join(COLUMNS)
    if missing := [name for name in COLUMNS if name not in found]:
        return f"The header lacks {', '.join(missing)}: expected {expected}."
    if extra := [name for name in found if name not in COLUMNS]:
        return f"The header has columns this import does not read ({', '.join(extra)}): expected {expected}."
    return f"The header's columns must come in this order: {expected}."


class StockRow(NamedTuple):
    """A valid row, in the columns' order after its line: as it is copied to the database."""

    line: int
    sku: str
    name: str
    unit_price: int
    currency: str
    stock_on_hand: int


@dataclass(frozen=True)
class RowError:
    line: int
    sku: str | None
    reason: str


def whole(value: str) -> int | None:
    """'0' to '2147483647' -> the number; anything else (a sign, a point, other digits) -> None."""
    if value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if number <= MAX_INT else None
    return None


def parse_row(line: int, fields: list[str]) -> StockRow | RowError:
    """One record, as the columns promise, or why not. Called for every row of files of millions
    of rows: plain string methods where they do what a regular expression would."""
    if len(fields) != len(COLUMNS):
        sku = fields[0].strip()[:64] if fields else None
        return RowError(line, sku, f"expected {len(COLUMNS)} fields, found {len(fields)}")
    sku, name, price, currency, on_hand = fields
    sku, name = sku.strip(), name.strip()
    if not SKU.fullmatch(sku):  # ASCII only: so a byte that was not UTF-8 fails here too
        return RowError(line, sku[:64], "sku: letters, digits, '_', '.', '-', at most 64")
    if not name or len(name) > MAX_NAME or CONTROL.search(name):
        return RowError(line, sku, f"name: 1 to {MAX_NAME} characters, no control characters")
    if "\ufffd" in name:
        return RowError(line, sku, "not valid UTF-8")
    if (unit_price := whole(price.strip())) is None:
        return RowError(line, sku, f"unit_price: whole minor units from 0 to {MAX_INT}")
    currency = currency.strip()
    if len(currency) != 3 or not (currency.isascii() and currency.isupper() and currency.isalpha()):
        return RowError(line, sku, "currency: a three-letter ISO 4217 code, upper case")
    if (stock := whole(on_hand.strip())) is None:
        return RowError(line, sku, f"stock_on_hand: a whole number from 0 to {MAX_INT}")
    return StockRow(line, sku, name, unit_price, currency, stock)


@dataclass
class Batch:
    """Rows read from `offset` (a record boundary) up to `next_offset`."""

    rows: list[StockRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    latest: list[StockRow] = field(default_factory=list)  # what is applied: see latest_per_sku
    records: int = 0  # data records read (blank lines are not records)
    offset: int = 0
    next_offset: int = 0
    next_line: int = 0
    at_end: bool = False


def read_batch(file: BinaryIO, offset: int, lines_done: int, max_records: int) -> Batch:
    """Up to `max_records` records from `offset`, where `lines_done` lines lie before it. At
    offset 0 the header line is read first (the upload checked it). A quoted field may span
    lines: a batch always ends after a whole record."""
    file.seek(offset)
    consumed = 0

    def lines() -> Iterator[str]:
        nonlocal consumed
        for raw in file:
            consumed += len(raw)
            yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(lines())
    batch = Batch(offset=offset)
    before = 0  # reader.line_num after the previous record
    if offset == 0:
        next(reader, None)
        before = reader.line_num
    while batch.records < max_records:
        try:
            fields = next(reader)
        except StopIteration:
            batch.at_end = True
            break
        except csv.Error as error:
            batch.records += 1
            batch.errors.append(RowError(lines_done + before + 1, None, f"malformed CSV: {error}"))
            before = reader.line_num
            continue
        first_line = lines_done + before + 1
        before = reader.line_num
        if not fields or fields == [""]:
            continue
        batch.records += 1
        parsed = parse_row(first_line, fields)
        if isinstance(parsed, RowError):
            batch.errors.append(parsed)
        else:
            batch.rows.append(parsed)
    else:
        batch.at_end = not file.read(1)
    batch.next_offset = offset + consumed
    batch.next_line = lines_done + before
    batch.latest = latest_per_sku(batch.rows)
    return batch


def latest_per_sku(rows: list[StockRow]) -> list[StockRow]:
    """A SKU on several lines: the last line wins. Sorted by SKU, the order in which every
    transaction locks products."""
    return sorted({row.sku: row for row in rows}.values(), key=lambda row: row.sku)


def create_job(session: Session, key: str, sha256: str, spool_name: str, size: int) -> ImportJob:
    """The job and the message that starts it, in the caller's transaction."""
    job = ImportJob(idempotency_key=key, sha256=sha256, spool_name=spool_name, bytes_total=size)
    session.add(job)
    enqueue(session, ImportStock(job_id=job.id))
    return job


def requeue_stalled(session: Session, idle_for: timedelta) -> list[uuid.UUID]:
    """Jobs not ended whose last batch is older than `idle_for` (a message lost after its retries
    ran out) get a message again, in the caller's transaction. A job whose message still waits
    gets a second one: the two take batches in turns, each from where the other left off."""
    now = utcnow()
    jobs = table(ImportJob)
    stalled = session.exec(
        update(jobs)
        .where(col(jobs.c.status).not_in(IMPORT_ENDED), jobs.c.updated_at < now - idle_for)
        .values(updated_at=now)
        .returning(jobs.c.id)
    ).all()
    for (job_id,) in stalled:
        enqueue(session, ImportStock(job_id=job_id))
    return [job_id for (job_id,) in stalled]


def spooled_files_in_use(session: Session) -> set[str]:
    """The spool files of jobs that have not ended."""
    names = session.exec(
        select(ImportJob.spool_name).where(col(ImportJob.status).not_in(IMPORT_ENDED))
    ).all()
    return set(names)


class KeyReusedForAnotherFile(ValueError):
    pass


def find_job(session: Session, key: str, sha256: str, dedupe: timedelta) -> ImportJob | None:
    """The job this upload repeats: the same Idempotency-Key (for the same file), or the same
    file uploaded within `dedupe` and not cancelled or failed."""
    by_key = session.exec(select(ImportJob).where(ImportJob.idempotency_key == key)).first()
    if by_key is not None:
        if by_key.sha256 != sha256:
            raise KeyReusedForAnotherFile(key)
        return by_key
    return session.exec(
        select(ImportJob)
        .where(
            ImportJob.sha256 == sha256,
            col(ImportJob.created_at) > utcnow() - dedupe,
            col(ImportJob.status).not_in([ImportStatus.CANCELLED, ImportStatus.FAILED]),
        )
        .order_by(col(ImportJob.created_at).desc())
    ).first()


def request_cancel(session: Session, job_id: uuid.UUID) -> ImportJob | None:
    """A queued job is cancelled at once; a running one at the end of its current batch."""
    job = session.exec(select(ImportJob).where(ImportJob.id == job_id).with_for_update()).first()
    if job is None or job.status in IMPORT_ENDED:
        return job
    now = utcnow()
    values: dict[str, object] = {"cancel_requested_at": job.cancel_requested_at or now}
    if job.status == ImportStatus.QUEUED:
        values |= {"status": ImportStatus.CANCELLED, "finished_at": now, "updated_at": now}
    jobs = table(ImportJob)
    session.exec(update(jobs).where(jobs.c.id == job_id).values(**values))
    session.refresh(job)
    return job


@dataclass(frozen=True)
class Progress:
    """What the status page and the dashboard show of a job."""

    percent: float
    rows_per_s: float | None
    eta_s: float | None

    @classmethod
    def of(cls, job: ImportJob, now: datetime) -> "Progress":
        total = max(job.bytes_total, 1)
        percent = 100.0 if job.status == ImportStatus.DONE else 100 * job.bytes_done / total
        if job.started_at is None:
            return cls(round(percent, 1), None, None)
        until = job.finished_at or job.updated_at
        seconds = (until - job.started_at).total_seconds()
        if seconds <= 0 or job.rows_done == 0:
            return cls(round(percent, 1), None, None)
        eta = None
        if job.status not in IMPORT_ENDED and job.bytes_done:
            eta = seconds * (job.bytes_total - job.bytes_done) / job.bytes_done
            eta = max(eta - (now - until).total_seconds(), 0.0)
        return cls(round(percent, 1), round(job.rows_done / seconds, 1), eta)
