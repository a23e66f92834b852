"""Bulk stock imports: an uploaded catalog CSV (kept in the spool folder) and how far the
background import has come; the rows it skipped, each with its line and why."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

from orders.models.base import BigId, UtcDateTime, status_column, timestamp


class ImportStatus(StrEnum):
    QUEUED = "queued"  # uploaded; no batch committed yet
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"  # the spool file was lost: nothing more can be read


ENDED = (ImportStatus.DONE, ImportStatus.CANCELLED, ImportStatus.FAILED)


class ImportJob(SQLModel, table=True):
    __tablename__ = "import_job"
    __table_args__ = (Index(None, "sha256", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    idempotency_key: str = Field(max_length=255, unique=True)
    sha256: str = Field(max_length=64, description="Of the CSV as imported (after gzip).")
    spool_name: str = Field(max_length=100, description="The file in IMPORT_SPOOL_DIR.")
    status: ImportStatus = Field(default=ImportStatus.QUEUED, sa_type=status_column(ImportStatus))
    bytes_total: int = Field(sa_type=BigInteger)
    # Where the next batch starts: every batch commits its rows and these together, so a
    # worker that dies resumes exactly after the last committed batch.
    bytes_done: int = Field(default=0, sa_type=BigInteger)
    lines_done: int = Field(default=0, sa_type=BigInteger)
    rows_done: int = Field(default=0, sa_type=BigInteger)
    rows_failed: int = Field(default=0, sa_type=BigInteger)
    cancel_requested_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = timestamp()
    started_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime = timestamp()
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ImportRowError(SQLModel, table=True):
    __tablename__ = "import_row_error"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    job_id: uuid.UUID = Field(foreign_key="import_job.id", ondelete="CASCADE", index=True)
    line: int = Field(sa_type=BigInteger, description="1 is the header line.")
    sku: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=300)
