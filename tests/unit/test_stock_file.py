"""The stock file's rules, without a database: its header, each row, and batches read from a byte
offset that add up to the whole file however the file is cut."""

import io
import os
import time

import pytest

from fulfillment.stock_import import copy_text
from orders.api.spool import sweep
from orders.stock_import import RowError, StockRow, header_problem, latest_per_sku, read_batch

HEADER = b"sku,name,unit_price,currency,stock_on_hand\n"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"sku,name,unit_price,currency,stock_on_hand", None),
        (b"\xef\xbb\xbfSKU, Name ,unit_price,currency,stock_on_hand\r", None),
        (b"sku,name,price,currency,stock_on_hand", "lacks unit_price"),
        (b"sku,name,unit_price,currency,stock_on_hand,colour", "does not read (colour)"),
        (b"name,sku,unit_price,currency,stock_on_hand", "in this order"),
        (b"\xff\xfesku", "not UTF-8"),
    ],
)
def test_the_header_names_its_problem(line, problem):
    found = header_problem(line)
    if problem is None:
        assert found is None
    else:
        assert problem in (found or "")


FILE = HEADER + (
    b"MUG-001,Enamel mug,1450,EUR,500\n"
    b"\n"  # line 3: blank, not a record
    b'NB-A5,"Notebook, dotted",1200,EUR,7\n'
    b'LONG-1,"A name\nover two lines",900,EUR,1\n'  # lines 5-6: a line break in a name
    b"BAD-PRICE,Mug,12.50,EUR,5\n"  # line 7
    b"SHORT,Mug,100,EUR\n"  # line 8
    b"LOWER,Mug,100,eur,5\n"  # line 9
    b"BIG,Mug,100,EUR,99999999999\n"  # line 10
    b"bad sku,Mug,100,EUR,5\n"  # line 11
    b"UTF,Caf\xe9,100,EUR,5\n"  # line 12: Latin-1, not UTF-8
    b"MUG-001,Enamel mug v2,1500,EUR,400"  # line 13, no final newline
)


def read_all(data: bytes, size: int) -> tuple[list[StockRow], list[RowError], int]:
    file = io.BytesIO(data)
    offset = lines = records = 0
    rows: list[StockRow] = []
    errors: list[RowError] = []
    while True:
        batch = read_batch(file, offset, lines, size)
        rows += batch.rows
        errors += batch.errors
        records += batch.records
        offset, lines = batch.next_offset, batch.next_line
        if batch.at_end:
            return rows, errors, records


def test_rows_and_errors_carry_the_line_they_start_on():
    rows, errors, records = read_all(FILE, 100)
    assert records == 10
    assert [(r.line, r.sku, r.name, r.unit_price, r.stock_on_hand) for r in rows] == [
        (2, "MUG-001", "Enamel mug", 1450, 500),
        (4, "NB-A5", "Notebook, dotted", 1200, 7),
        (13, "MUG-001", "Enamel mug v2", 1500, 400),
    ]
    assert [(e.line, e.sku, e.reason.split(":")[0]) for e in errors] == [
        (5, "LONG-1", "name"),
        (7, "BAD-PRICE", "unit_price"),
        (8, "SHORT", "expected 5 fields, found 4"),
        (9, "LOWER", "currency"),
        (10, "BIG", "stock_on_hand"),
        (11, "bad sku", "sku"),
        (12, "UTF", "not valid UTF-8"),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_batches_of_any_size_read_the_same_rows(size):
    assert read_all(FILE, size) == read_all(FILE, 100)


def test_a_batch_ends_after_a_whole_record_and_says_where():
    file = io.BytesIO(FILE)
    first = read_batch(file, 0, 0, 3)  # MUG-001, NB-A5, LONG-1 (two lines)
    assert [r.sku for r in first.rows] == ["MUG-001", "NB-A5"]
    assert [e.line for e in first.errors] == [5]
    assert first.next_line == 6
    assert FILE[first.next_offset :].startswith(b"BAD-PRICE,")
    assert not first.at_end


def test_the_last_line_of_a_sku_wins_and_rows_come_sorted():
    rows, _, _ = read_all(FILE, 100)
    assert [(r.sku, r.stock_on_hand) for r in latest_per_sku(rows)] == [
        ("MUG-001", 400),
        ("NB-A5", 7),
    ]


def test_the_sweep_removes_old_files_nobody_uses_and_only_those(tmp_path):
    names = ["old.csv", "old.csv.part", "queued.csv", "new.csv", "new.csv.part", "notes.txt"]
    for name in names:
        (tmp_path / name).write_text("x")
    day_ago = time.time() - 86_400
    for name in ("old.csv", "old.csv.part", "queued.csv", "notes.txt"):
        os.utime(tmp_path / name, (day_ago, day_ago))

    swept = sweep(tmp_path, retention_s=3_600, in_use={"queued.csv"})

    assert sorted(swept) == ["old.csv", "old.csv.part"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "new.csv",
        "new.csv.part",
        "notes.txt",
        "queued.csv",
    ]
    assert sweep(tmp_path / "absent", 3_600, set()) == []


def test_rows_go_to_copy_as_tab_separated_text_with_backslashes_escaped():
    rows = [StockRow(2, "A-1", r"Mug \ 12 oz", 100, "EUR", 3), StockRow(3, "B", "Tee", 5, "USD", 0)]
    assert copy_text(rows) == b"2\tA-1\tMug \\\\ 12 oz\t100\tEUR\t3\n3\tB\tTee\t5\tUSD\t0\n"
