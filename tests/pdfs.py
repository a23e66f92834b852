"""Reading a rendered PDF as a reader would see it: its text, its pages, the words drawn over
each other, and a picture of a page (pdfplumber: pdfminer's word boxes, pdfium's rasteriser)."""

import io
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import pdfplumber

# Two words whose boxes share less than this (points, both ways) only touch.
TOUCH_PT = 0.5


@dataclass(frozen=True)
class Word:
    page: int
    text: str
    x0: float
    top: float
    x1: float
    bottom: float

    def covers(self, other: "Word") -> bool:
        width = min(self.x1, other.x1) - max(self.x0, other.x0)
        height = min(self.bottom, other.bottom) - max(self.top, other.top)
        return width > TOUCH_PT and height > TOUCH_PT


def pdf_text(pdf: bytes) -> tuple[int, str]:
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        return len(doc.pages), "\n".join(page.extract_text() or "" for page in doc.pages)


def page_size(pdf: bytes) -> tuple[int, int]:
    """Page 1's width and height in points, rounded."""
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        return round(doc.pages[0].width), round(doc.pages[0].height)


def words(pdf: bytes) -> list[Word]:
    found = []
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        for number, page in enumerate(doc.pages, start=1):
            for w in page.extract_words(keep_blank_chars=False):
                found.append(Word(number, w["text"], w["x0"], w["top"], w["x1"], w["bottom"]))
    return found


def column_text(pdf: bytes, heading: str) -> str:
    """What a table column holds, top to bottom on every page, wrapped pieces joined: the words
    that start where the column's heading starts."""
    found = words(pdf)
    left = next(w.x0 for w in found if w.text == heading)
    column = [w for w in found if abs(w.x0 - left) < TOUCH_PT and w.text != heading]
    return "".join(w.text for w in sorted(column, key=lambda w: (w.page, w.top)))


def words_past_margins(pdf: bytes, margin_pt: float) -> list[Word]:
    """Words that reach into the left or right margin: text that overflowed its box."""
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        width = doc.pages[0].width
    return [
        w for w in words(pdf) if w.x0 < margin_pt - TOUCH_PT or w.x1 > width - margin_pt + TOUCH_PT
    ]


def overlapping_words(pdf: bytes) -> list[tuple[Word, Word]]:
    """Pairs of words on one page whose boxes overlap: text drawn over text."""
    by_page: dict[int, list[Word]] = {}
    for word in words(pdf):
        by_page.setdefault(word.page, []).append(word)
    return [
        (a, b)
        for page in by_page.values()
        for a, b in combinations(sorted(page, key=lambda w: w.top), 2)
        if a.covers(b)
    ]


def save_page_png(pdf: bytes, path: Path, page: int = 1, dpi: int = 100) -> Path:
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        doc.pages[page - 1].to_image(resolution=dpi, antialias=True).save(path)
    return path
