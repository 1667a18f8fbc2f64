"""Telling a truncated JPEG from a whole one before decoding it.

OpenCV's `imread` decodes a JPEG file cut short (an MJPEG USB camera dropping the end of a
frame, a copy that stopped half-way) without an error: libjpeg warns on stderr and the missing
rows come back grey, so the detector would run on half an image. `imdecode` refuses such data,
but cannot say why. A complete JPEG ends with the end-of-image marker
FF D9, and inside the entropy-coded data every FF byte is stuffed (FF 00) or a restart marker
(FF D0..D7), so FF D9 near the end of the data only appears where the image really ends.
"""

from __future__ import annotations

import numpy as np

JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
# Writers may pad after the end marker (zeros, or FF fill bytes); look this far back for it.
END_SEARCH_BYTES = 1024


def is_truncated_jpeg(head: bytes, tail: bytes) -> bool:
    """True for a JPEG (by its first bytes `head`) whose last bytes `tail` hold no end marker.

    Anything that does not start like a JPEG is not judged here (False): PNGs and other
    formats are left to the decoder.
    """
    return head[:2] == JPEG_START and JPEG_END not in tail[-END_SEARCH_BYTES:]


def is_truncated_jpeg_buffer(data: bytes | bytearray | memoryview | np.ndarray) -> bool:
    """:func:`is_truncated_jpeg` for a whole encoded image held in memory."""
    raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    raw = raw.reshape(-1)
    return is_truncated_jpeg(raw[:2].tobytes(), raw[-END_SEARCH_BYTES:].tobytes())
