"""What every table shares: the naming convention, column types, timestamps."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, Table
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite autoincrements only an INTEGER PRIMARY KEY (the embedded demo); BIGINT everywhere else.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def table(model: type[SQLModel]) -> Table:
    """The Core table of a model, for hot paths that skip the ORM's unit of work."""
    core: Table = model.__table__  # type: ignore[attr-defined]
    return core


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware in and out. PostgreSQL keeps the zone; SQLite (the embedded demo) stores
    text without one, so values read back are marked UTC, as they were written."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def status_column(enum: type[StrEnum], length: int = 16) -> Any:
    """Stored as its value in a VARCHAR: adding a state needs no ALTER TYPE."""
    return SAEnum(
        enum, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


def timestamp(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UtcDateTime, **kwargs)
