"""An uploaded stock file, written to the spool folder as it arrives: inflated if it came gzipped,
hashed (SHA-256) and bounded in size on the way, its header line checked as soon as it is in. The
methods block (disk, zlib, hashing): the route calls them in a worker thread, a chunk at a time,
so never more than a chunk is held in memory and the event loop does none of that work."""

import hashlib
import os
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

from orders.api.gates import too_large
from orders.api.problems import Problem
from orders.stock_import import header_problem

HEADER_MAX = 64 * 1024  # a header line longer than this is not a header
SYNC_EVERY = 64 * 1024 * 1024  # written back as it goes: the last fsync before the 202 is short
INFLATE_CHUNK = 1024 * 1024  # a gzip bomb inflates a bounded piece at a time


def bad_header(detail: str) -> Problem:
    return Problem(422, "invalid-stock-file", "Not a stock file this import reads", detail)


def bad_gzip(detail: str) -> Problem:
    return Problem(400, "malformed-gzip", "Malformed gzip", detail)


class Spool:
    def __init__(self, folder: Path, max_bytes: int, gzipped: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = f"{uuid.uuid4().hex}.csv"
        self.path = folder / self.name
        self.part = folder / f"{self.name}.part"  # swept if the upload never completes
        self.file = self.part.open("wb")
        self.max_bytes = max_bytes
        self.inflater = zlib.decompressobj(wbits=31) if gzipped else None
        self.hash = hashlib.sha256()
        self.size = self.unsynced = 0
        self.head: bytes | None = b""  # until the header line is checked

    @property
    def header_checked(self) -> bool:
        return self.head is None

    @property
    def sha256(self) -> str:
        return self.hash.hexdigest()

    def feed(self, received: bytes) -> None:
        for data in self._inflated(received) if self.inflater else (received,):
            self._take(data)

    def finish(self) -> None:
        """The last byte is in: the whole file on disk (fsync), under its final name."""
        if self.inflater is not None and not self.inflater.eof:
            raise bad_gzip("The gzip stream ends early.")
        if self.head is not None:
            if not self.head.strip():
                raise bad_header("The file is empty: its first line must be the header.")
            self._check_header(self.head)
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.part.rename(self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename too survives a crash
        finally:
            os.close(directory)

    def discard(self) -> None:
        self.file.close()
        self.part.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)

    def _inflated(self, received: bytes) -> Iterator[bytes]:
        assert self.inflater is not None
        data = received
        while data:
            try:
                yield self.inflater.decompress(data, INFLATE_CHUNK)
            except zlib.error as error:
                raise bad_gzip(f"The body is not valid gzip ({error}).") from error
            if self.inflater.eof and self.inflater.unused_data:  # another gzip member follows
                data, self.inflater = self.inflater.unused_data, zlib.decompressobj(wbits=31)
            else:
                data = self.inflater.unconsumed_tail

    def _take(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes)
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\n")
            if end >= 0:
                self._check_header(self.head[:end])
            elif len(self.head) > HEADER_MAX:
                raise bad_header(f"No header line in the first {HEADER_MAX} bytes.")
        self.hash.update(data)
        self.file.write(data)
        self.unsynced += len(data)
        if self.unsynced >= SYNC_EVERY:
            self.file.flush()
            os.fdatasync(self.file.fileno())
            self.unsynced = 0

    def _check_header(self, line: bytes) -> None:
        if (problem := header_problem(line)) is not None:
            raise bad_header(problem)
        self.head = None


def sweep(folder: Path, retention_s: float, in_use: set[str]) -> list[str]:
    """Files left behind: uploads that never completed, and files of jobs that ended without
    removing theirs (or were never written), once older than `retention_s`. Returns their names."""
    if not folder.exists():
        return []
    cutoff = time.time() - retention_s
    swept = []
    for path in folder.iterdir():
        if path.name in in_use or not path.name.endswith((".csv", ".csv.part")):
            continue
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                swept.append(path.name)
        except FileNotFoundError:  # gone meanwhile
            continue
    return swept
