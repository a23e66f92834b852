"""How a stock import's batches meet the catalog on PostgreSQL: a row that matches its product is
neither written nor locked, a changed one is updated, a new one added; two imports adding the same
new products at once take turns instead of failing on the key."""

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fulfillment.runner import Context
from fulfillment.stock_import import import_stock
from orders import stock_import
from orders.models import ImportJob

HEADER = "sku,name,unit_price,currency,stock_on_hand\n"


def run_import(ctx: Context, spool: Path, body: str, batch_rows: int = 50) -> str:
    """`body` imported by `import_stock` in this thread, to its end; returns the job's status."""
    spool.mkdir(exist_ok=True)
    name = f"{uuid.uuid4()}.csv"
    (spool / name).write_text(HEADER + body)
    settings = ctx.settings.model_copy(
        update={"import_spool_dir": str(spool), "import_batch_rows": batch_rows}
    )
    ctx = dataclasses.replace(ctx, settings=settings)
    with ctx.sessions() as session:
        job = stock_import.create_job(session, name, name, name, len(HEADER + body))
        session.commit()
        job_id = job.id
    assert import_stock(ctx, job_id) == "ended"
    with ctx.sessions() as session:
        ended = session.get(ImportJob, job_id)
        assert ended is not None
        return ended.status


def test_a_row_that_matches_its_product_is_neither_written_nor_locked(step_context, db, tmp_path):
    rows = [f"SAME-{n:03d},Product {n},{100 + n},EUR,{n}\n" for n in range(200)]
    assert run_import(step_context, tmp_path, "".join(rows)) == "done"
    db.execute("UPDATE product SET stock_reserved = 7 WHERE sku = 'SAME-150'")

    def versions() -> dict[str, tuple[str, str, object]]:
        found = db.execute(
            "SELECT sku, xmin::text, xmax::text, updated_at FROM product WHERE sku LIKE 'SAME-%'"
        ).fetchall()
        return {sku: (xmin, xmax, updated_at) for sku, xmin, xmax, updated_at in found}

    before = versions()
    rows[10] = "SAME-010,Product 10 (new label),110,EUR,10\n"  # changed: its name
    rows[20] = "SAME-020,Product 20,120,EUR,25\n"  # changed: its stock
    rows[150] = "SAME-150,Product 150,250,EUR,5\n"  # changed, but below the 7 reserved
    assert run_import(step_context, tmp_path, "".join(rows)) == "done"
    after = versions()

    touched = {sku for sku in before if after[sku] != before[sku]}
    assert touched == {"SAME-010", "SAME-020", "SAME-150"}  # the last locked to check it, kept
    products = db.execute(
        "SELECT sku, name, stock_on_hand FROM product"
        " WHERE sku IN ('SAME-010', 'SAME-020', 'SAME-150') ORDER BY sku"
    ).fetchall()
    assert products == [
        ("SAME-010", "Product 10 (new label)", 10),
        ("SAME-020", "Product 20", 25),
        ("SAME-150", "Product 150", 150),
    ]
    errors = db.execute("SELECT line, sku, reason FROM import_row_error").fetchall()
    assert errors == [(152, "SAME-150", "stock_on_hand 5 is below the 7 units reserved")]


def test_two_imports_adding_the_same_new_products_at_once_both_finish(step_context, db, tmp_path):
    first = "".join(f"BOTH-{n:05d},Product {n},100,EUR,1\n" for n in range(2_000))
    second = "".join(f"BOTH-{n:05d},Product {n} (v2),100,EUR,2\n" for n in range(2_000))

    with ThreadPoolExecutor(2) as pool:
        statuses = list(
            pool.map(lambda body: run_import(step_context, tmp_path, body, 25), [first, second])
        )

    assert statuses == ["done", "done"]
    assert db.execute("SELECT count(*) FROM import_row_error").fetchone() == (0,)
    # Each batch went in whole, after the other import's batch of the same SKUs or before it.
    stock = db.execute(
        "SELECT stock_on_hand, count(*) FROM product WHERE sku LIKE 'BOTH-%'"
        " GROUP BY stock_on_hand ORDER BY stock_on_hand"
    ).fetchall()
    assert sum(n for _, n in stock) == 2_000
    assert {level for level, _ in stock} <= {1, 2}
