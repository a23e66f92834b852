"""Product image variants: CPU-bound work, run in a process pool so the event loop (and the GIL)
stay free for requests. Plain functions; the pool pickles their arguments and results."""

import io
import warnings

from PIL import Image

ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp")
VARIANT_TYPE = "image/webp"
Image.MAX_IMAGE_PIXELS = 50_000_000  # a decompression bomb is refused, not rendered


class NotAnImage(ValueError):
    pass


def resize_variants(data: bytes, sizes: tuple[int, ...]) -> list[tuple[int, int, int, bytes]]:
    """(size, width, height, webp bytes) per size: the longest side scaled down to `size`,
    never up, aspect ratio kept."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as original:
                original.load()
                image = (
                    original.convert("RGBA")
                    if original.mode not in ("RGB", "RGBA")
                    else original.copy()
                )
    except (OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage(str(exc)) from exc
    variants = []
    for size in sizes:
        variant = image.copy()
        variant.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        variant.save(out, "WEBP", quality=82, method=4)
        variants.append((size, variant.width, variant.height, out.getvalue()))
    return variants
