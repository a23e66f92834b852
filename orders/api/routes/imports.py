"""Bulk stock imports (`X-API-Key` or an ops session): the CSV streamed to the spool folder and
answered with 202 once it is on disk and its job committed; the import itself runs on the
workers (fulfillment.stock_import). Status, the rows skipped as CSV, cancel."""

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orders import stock_import
from orders.api.auth import require_ops_key
from orders.api.config import ApiSettings
from orders.api.dependencies import AuditDep, IdempotencyKeyDep, SessionDep, SettingsDep
from orders.api.gates import too_large
from orders.api.problems import Problem, not_found
from orders.api.spool import Spool
from orders.db import run
from orders.idempotency import KeyReused
from orders.models import IMPORT_ENDED, ImportJob, ImportRowError, ImportStatus, utcnow
from orders.stock_import import COLUMNS, KeyReusedForAnotherFile, Progress

router = APIRouter(prefix="/ops", tags=["stock imports"], dependencies=[Depends(require_ops_key)])
FEED_BYTES = 1024 * 1024  # received bytes handed to the spool's thread at a time
ERRORS_PAGE = 5_000


class ImportJobPublic(BaseModel):
    id: uuid.UUID
    status: ImportStatus
    sha256: str
    bytes_total: int
    bytes_done: int
    percent: float
    rows_done: int
    rows_imported: int
    rows_failed: int
    rows_per_s: float | None
    eta_s: float | None
    cancel_requested: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status_url: str
    errors_url: str
    replayed: bool = False

    @classmethod
    def of(cls, job: ImportJob, replayed: bool = False) -> "ImportJobPublic":
        progress = Progress.of(job, utcnow())
        return cls(
            id=job.id,
            status=job.status,
            sha256=job.sha256,
            bytes_total=job.bytes_total,
            bytes_done=job.bytes_done,
            percent=progress.percent,
            rows_done=job.rows_done,
            rows_imported=job.rows_done - job.rows_failed,
            rows_failed=job.rows_failed,
            rows_per_s=progress.rows_per_s,
            eta_s=None if progress.eta_s is None else round(progress.eta_s, 1),
            cancel_requested=job.cancel_requested_at is not None,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            status_url=f"/ops/imports/{job.id}",
            errors_url=f"/ops/imports/{job.id}/errors.csv",
            replayed=replayed,
        )


def accepted(job: ImportJob, replayed: bool) -> JSONResponse:
    body = ImportJobPublic.of(job, replayed).model_dump(mode="json")
    headers = {"Location": f"/ops/imports/{job.id}", "Retry-After": "2"}
    return JSONResponse(body, 202, headers=headers)


CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": f"CSV, header `{','.join(COLUMNS)}`; `unit_price` in minor units. "
        "Optionally `Content-Encoding: gzip`.",
        "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/imports",
    status_code=202,
    response_model=ImportJobPublic,
    openapi_extra=CSV_BODY,
    responses={
        400: {"description": "Not valid gzip"},
        413: {"description": "Larger than IMPORT_MAX_BYTES"},
        415: {"description": "Not text/csv, or an encoding other than gzip"},
        422: {"description": "Not this import's header, or a reused Idempotency-Key"},
    },
)
async def upload_stock_file(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    audit: AuditDep,
    key: IdempotencyKeyDep,
) -> JSONResponse:
    """Upload the catalog with stock levels. Answered with 202 and the job once the file is
    stored; the same key, or the same file within IMPORT_DEDUPE_HOURS, answers its first job."""
    gzipped = _encoding(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.import_max_bytes:
        raise too_large(settings.import_max_bytes)
    spool = await to_thread.run_sync(
        Spool, Path(settings.import_spool_dir), settings.import_max_bytes, gzipped
    )
    try:
        await _receive(request, spool, settings.import_max_bytes)
        job, created = await _job_for(session, settings, key, spool)
    except BaseException as error:  # nothing is kept of a refused or failed upload
        await to_thread.run_sync(spool.discard)
        if isinstance(error, KeyReusedForAnotherFile):
            raise KeyReused(key) from error
        raise
    if created:
        audit("stock_import.uploaded", target=str(job.id), detail={"bytes": spool.size})
    else:
        await to_thread.run_sync(spool.discard)
    return accepted(job, replayed=not created)


def _encoding(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "text/csv":
        detail = "Send the stock file as text/csv."
        raise Problem(415, "unsupported-media-type", "Unsupported media type", detail)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        detail = "Send the file as it is, or with Content-Encoding: gzip."
        raise Problem(415, "unsupported-content-encoding", "Unsupported content encoding", detail)
    return encoding == "gzip"


async def _receive(request: Request, spool: Spool, max_bytes: int) -> None:
    """The body into the spool a chunk at a time; the first chunks at once, so a wrong header
    is answered before the rest of the file is sent."""
    pending: list[bytes] = []
    held = received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise too_large(max_bytes)
        pending.append(chunk)
        held += len(chunk)
        if held >= FEED_BYTES or not spool.header_checked:
            await to_thread.run_sync(spool.feed, b"".join(pending))
            pending, held = [], 0
    await to_thread.run_sync(spool.feed, b"".join(pending))
    await to_thread.run_sync(spool.finish)


async def _job_for(
    session: AsyncSession, settings: ApiSettings, key: str, spool: Spool
) -> tuple[ImportJob, bool]:
    """The job this upload repeats, or a new one with its outbox message (committed)."""
    dedupe = timedelta(hours=settings.import_dedupe_hours)
    for _ in range(2):  # a concurrent upload with the same key may commit first
        found = await run(session, stock_import.find_job, key, spool.sha256, dedupe)
        if found is not None:
            return found, False
        job = await run(session, stock_import.create_job, key, spool.sha256, spool.name, spool.size)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            continue
        return job, True
    raise RuntimeError("the Idempotency-Key's job could not be read back")


@router.get("/imports", response_model=list[ImportJobPublic])
async def list_imports(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[ImportJobPublic]:
    """The latest imports, newest first."""
    jobs = await session.exec(
        select(ImportJob).order_by(col(ImportJob.created_at).desc()).limit(limit)
    )
    return [ImportJobPublic.of(job) for job in jobs.all()]


@router.get("/imports/{job_id}", response_model=ImportJobPublic)
async def get_import(job_id: uuid.UUID, session: SessionDep) -> ImportJobPublic:
    job = await session.get(ImportJob, job_id)
    if job is None:
        raise not_found("stock import with this id")
    return ImportJobPublic.of(job)


@router.get(
    "/imports/{job_id}/errors.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "line,sku,reason"}},
)
async def import_errors(
    job_id: uuid.UUID, request: Request, session: SessionDep
) -> StreamingResponse:
    """The rows the import skipped, by line (the header is line 1), as far as it has come."""
    if await session.get(ImportJob, job_id) is None:
        raise not_found("stock import with this id")
    sessions = request.app.state.sessions

    async def rows() -> AsyncIterator[str]:
        yield csv_text([("line", "sku", "reason")])
        after = 0
        while True:
            async with sessions() as page_session:
                page = (
                    await page_session.exec(
                        select(ImportRowError)
                        .where(ImportRowError.job_id == job_id, col(ImportRowError.id) > after)
                        .order_by(col(ImportRowError.id))
                        .limit(ERRORS_PAGE)
                    )
                ).all()
            if not page:
                return
            yield csv_text((e.line, e.sku or "", e.reason) for e in page)
            after = page[-1].id or after

    filename = f"import-{job_id}-errors.csv"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers=headers)


def csv_text(rows: Iterable[tuple[object, ...]]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


@router.post(
    "/imports/{job_id}/cancel",
    status_code=202,
    response_model=ImportJobPublic,
    responses={409: {"description": "The import has ended"}},
)
async def cancel_import(
    job_id: uuid.UUID, session: SessionDep, settings: SettingsDep, audit: AuditDep
) -> ImportJobPublic:
    """Stop the import between two batches: what was imported stays."""
    job = await run(session, stock_import.request_cancel, job_id)
    if job is None:
        raise not_found("stock import with this id")
    await session.commit()
    if job.status in IMPORT_ENDED and job.status != ImportStatus.CANCELLED:
        detail = f"The import has ended ({job.status}); there is nothing to cancel."
        raise Problem(409, "import-ended", "Import already ended", detail)
    if job.status == ImportStatus.CANCELLED:
        spooled = Path(settings.import_spool_dir) / job.spool_name
        await to_thread.run_sync(lambda: spooled.unlink(missing_ok=True))
    audit("stock_import.cancel_requested", target=str(job.id))
    return ImportJobPublic.of(job)
