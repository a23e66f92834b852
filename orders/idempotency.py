"""Idempotency-Key with Stripe's semantics, kept in PostgreSQL.

A key is claimed in its own short transaction before any side effect, so concurrent requests with
one key find the claim and get 409 instead of a second charge. The claim reserves the order id, and
the payment gateway's idempotency key derives from it: a retry after a crash authorizes nothing new.
The response is stored in the same transaction as the order it describes.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Delete, bindparam, delete, null, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from orders.models import IdempotencyKey, IdempotencyStatus, table, utcnow
from orders.models.order import ORDER_NUMBER_SEQ

UNLOCKED = datetime(2000, 1, 1, tzinfo=UTC)  # a claim locked "then" is free to take over


@dataclass(frozen=True)
class Claimed:
    order_id: uuid.UUID
    number: int | None  # the order's number, drawn at the claim on PostgreSQL (see order_write)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class IdempotencyPolicy:
    retention: timedelta
    lock_timeout: timedelta  # a claim older than this belongs to a request that died


class KeyReused(Exception):
    """The key was first used with another request."""


class KeyInUse(Exception):
    """The first request with this key has not finished."""


def request_hash(payload: dict[str, Any]) -> str:
    """The same request in other whitespace or key order hashes the same."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@cache
def _claim(dialect: str) -> Any:
    """The claim, built once per dialect with every value a parameter: SQLAlchemy compiles it
    once per process, not at every checkout."""
    keys = table(IdempotencyKey)
    now = bindparam("now", type_=keys.c.created_at.type)
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    return (
        insert(keys)
        .values(
            key=bindparam("key", type_=keys.c.key.type),
            request_hash=bindparam("request_hash", type_=keys.c.request_hash.type),
            order_id=bindparam("order_id", type_=keys.c.order_id.type),
            status=IdempotencyStatus.IN_PROGRESS,
            created_at=now,
            locked_at=now,
        )
        .on_conflict_do_nothing()
        .returning(keys.c.order_id, _number_at_claim(dialect))
    )


def claim(
    session: Session, key: str, fingerprint: str, policy: IdempotencyPolicy
) -> Claimed | StoredResponse:
    """Claim `key` for this request, or return what the first request with it answered."""
    for _ in range(2):  # a second pass only after deleting an expired record
        now = utcnow()
        claimed = (
            session.connection()
            .execute(
                _claim(session.get_bind().dialect.name),
                {"key": key, "request_hash": fingerprint, "order_id": uuid.uuid4(), "now": now},
            )
            .one_or_none()
        )
        if claimed is not None:
            session.commit()
            return Claimed(*claimed)

        record = session.get(IdempotencyKey, key, populate_existing=True)
        if record is None:
            continue  # purged between the insert and the read
        if record.created_at < now - policy.retention:
            session.exec(
                delete(IdempotencyKey).where(
                    IdempotencyKey.key == key,  # type: ignore[arg-type]
                    IdempotencyKey.created_at == record.created_at,  # type: ignore[arg-type]
                )
            )
            continue
        if record.request_hash != fingerprint:
            session.rollback()
            raise KeyReused(key)
        if record.status == IdempotencyStatus.COMPLETED:
            assert record.response_status is not None
            assert record.response_body is not None
            stored = StoredResponse(
                record.response_status, record.response_headers or {}, record.response_body
            )
            session.rollback()
            return stored
        if record.locked_at < now - policy.lock_timeout:
            taken = _take_over(session, key, record.locked_at, now)
            if taken is not None:
                return taken
        session.rollback()
        raise KeyInUse(key)
    raise KeyInUse(key)


def _take_over(session: Session, key: str, seen_lock: datetime, now: datetime) -> Claimed | None:
    """The first request died mid-way: take its claim (and its order id) if nobody else has."""
    keys = table(IdempotencyKey)
    taken = session.exec(
        update(keys)
        .where(
            keys.c.key == key,
            keys.c.status == IdempotencyStatus.IN_PROGRESS,
            keys.c.locked_at == seen_lock,
        )
        .values(locked_at=now)
        .returning(keys.c.order_id, _number_at_claim(session.get_bind().dialect.name))
    ).one_or_none()
    session.commit()
    return Claimed(*taken) if taken is not None else None


def _number_at_claim(dialect: str) -> Any:
    """On PostgreSQL the order's number is drawn from its sequence with the claim, so that the
    order's write is one statement; SQLite has no sequences and numbers the order as it writes
    it. A claim that ends without an order leaves a gap in the numbers, as a rolled-back
    transaction always has."""
    if dialect == "sqlite":
        return null()
    return ORDER_NUMBER_SEQ.next_value()


def record_response(session: Session, key: str, response: StoredResponse) -> None:
    """Store the final response, in the transaction that made it (the caller commits)."""
    keys = table(IdempotencyKey)
    session.exec(
        update(keys)
        .where(keys.c.key == key)
        .values(
            status=IdempotencyStatus.COMPLETED,
            response_status=response.status,
            response_headers=response.headers,
            response_body=response.body,
        )
    )


def release(session: Session, key: str) -> None:
    """The request ended without a result worth replaying, maybe after calling the gateway.

    The claim stays with its order id but is unlocked, so a retry with the same key takes it over
    at once and asks the gateway again under the same gateway key: an authorization that went
    through after our timeout is found, not made twice.
    """
    session.rollback()
    session.exec(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.key == key,  # type: ignore[arg-type]
            IdempotencyKey.status == IdempotencyStatus.IN_PROGRESS,  # type: ignore[arg-type]
        )
        .values(locked_at=UNLOCKED)
    )
    session.commit()


def forget(session: Session, key: str) -> None:
    """Nothing left the building (the cart was invalid): drop the claim."""
    session.rollback()
    discard(session, key)
    session.commit()


def discard(session: Session, key: str) -> None:
    """Drop an unfinished claim, in the caller's transaction: a retry with the key starts
    afresh, with a new order id."""
    session.exec(unfinished_claim(key))


def unfinished_claim(key: str) -> Delete:
    keys = table(IdempotencyKey)
    return delete(keys).where(keys.c.key == key, keys.c.status == IdempotencyStatus.IN_PROGRESS)


def purge_expired(session: Session, retention: timedelta) -> int:
    result = session.exec(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - retention)  # type: ignore[arg-type]
    )
    session.commit()
    return int(result.rowcount)
