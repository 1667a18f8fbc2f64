"""Telling a truncated JPEG from a whole one before decoding it.

OpenCV's `imread` decodes a JPEG file cut short (an MJPEG USB camera dropping the end of a
frame, a copy or download that stopped half-way) without an error: libjpeg warns on stderr and
the missing rows come back grey, so the detector would run on half an image. `imdecode` refuses
such data, but cannot say why. A complete JPEG's image data ends with the end-of-image marker
FF D9; inside the entropy-coded data every FF byte is stuffed (FF 00) or a restart marker
(FF D0..D7), so FF D9 there is the image's own end. The marker segments before the image data
are stepped over by their lengths, so the end marker of an EXIF thumbnail inside them does not
count, and whatever follows the real end (a phone's motion-photo video, a maker trailer,
padding) is not looked at: such files are whole.
"""

from __future__ import annotations

import numpy as np

JPEG_START = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
# Markers without a length field: TEM and the restart markers RST0..RST7.
_STANDALONE_MARKERS = frozenset((0x01, *range(0xD0, 0xD8)))
_START_OF_SCAN = 0xDA
_END_OF_IMAGE = 0xD9


def is_truncated_jpeg(data: bytes) -> bool:
    """True for JPEG data (by its first bytes) that stops before its end-of-image marker.

    Anything else (not a JPEG, broken headers) is left to the decoder: False.
    """
    if data[:2] != JPEG_START:
        return False
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
        elif marker == _START_OF_SCAN:
            return data.find(JPEG_END, position + 2) == -1
        elif marker == _END_OF_IMAGE:
            return False
        elif marker in _STANDALONE_MARKERS:
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return True  # the data ends within the headers, before any image data


def is_truncated_jpeg_buffer(data: bytes | bytearray | memoryview | np.ndarray) -> bool:
    """:func:`is_truncated_jpeg` for an encoded image held in a buffer or uint8 array."""
    raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    return is_truncated_jpeg(raw.reshape(-1).tobytes())
