"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge (ROS 1 only on PyPI).

Messages are the rosbags dataclasses of a typestore from :mod:`vision_msgs_definitions`.
Decoding always yields an H×W×3 uint8 array in the requested colour order, because that is
what every detector backend consumes; mono and alpha inputs are expanded / dropped, Bayer
mosaics are demosaiced, YUV 4:2:2 and 4:2:0 are converted and 16-bit samples are scaled to 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from togethernet_ros.vision.jpeg_integrity import is_truncated_jpeg_buffer

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

# Encodings encode_image_message writes: encoding -> (channels, channel order as stored).
RAW_ENCODINGS: dict[str, tuple[int, str]] = {
    "bgr8": (3, "bgr"),
    "rgb8": (3, "rgb"),
    "mono8": (1, "mono"),
    "bgra8": (4, "bgr"),
    "rgba8": (4, "rgb"),
}


@dataclass(frozen=True)
class PixelLayout:
    """How a sensor_msgs/Image encoding stores a pixel, and how it becomes BGR."""

    channels: int  # samples per pixel in the buffer
    sample_bytes: int  # 1, or 2 for 16-bit samples (byte order from is_bigendian)
    stored_order: str  # "bgr", "rgb", "mono", or "cv" (cvtColor with cv_code gives BGR)
    cv_code: int = -1


# OpenCV names a Bayer pattern by the 2nd and 3rd pixel of its 2nd row, i.e. shifted by one
# row and column from ROS's top-left 2×2 (bayer_rggb8 is OpenCV's BayerBG). Edge-aware
# demosaicing: fewer colour fringes than bilinear, and no slower (0.5 ms at 1080p).
_BAYER_CODES = {
    "rggb": cv2.COLOR_BayerBG2BGR_EA,
    "bggr": cv2.COLOR_BayerRG2BGR_EA,
    "gbrg": cv2.COLOR_BayerGR2BGR_EA,
    "grbg": cv2.COLOR_BayerGB2BGR_EA,
}
DECODABLE_ENCODINGS: dict[str, PixelLayout] = {
    **{name: PixelLayout(channels, 1, order) for name, (channels, order) in RAW_ENCODINGS.items()},
    "mono16": PixelLayout(1, 2, "mono"),
    "bgr16": PixelLayout(3, 2, "bgr"),
    "rgb16": PixelLayout(3, 2, "rgb"),
    "bgra16": PixelLayout(4, 2, "bgr"),
    "rgba16": PixelLayout(4, 2, "rgb"),
    **{f"bayer_{p}8": PixelLayout(1, 1, "cv", code) for p, code in _BAYER_CODES.items()},
    **{f"bayer_{p}16": PixelLayout(1, 2, "cv", code) for p, code in _BAYER_CODES.items()},
    # 4:2:2, two bytes a pixel, one U and one V per pixel pair. "yuv422" is UYVY and
    # "yuv422_yuy2" YUYV (usb_cam, V4L2 drivers); newer sensor_msgs names them uyvy / yuyv.
    "yuv422": PixelLayout(2, 1, "cv", cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": PixelLayout(2, 1, "cv", cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": PixelLayout(2, 1, "cv", cv2.COLOR_YUV2BGR_YUYV),
    "yuyv": PixelLayout(2, 1, "cv", cv2.COLOR_YUV2BGR_YUYV),
}
_PAIRED_ENCODINGS = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
# YUV 4:2:0 semi-planar: a Y plane of height rows, then height/2 rows of interleaved chroma, one
# U/V pair per 2×2 block (UV in nv12, VU in nv21), both planes with the message's step. OpenCV
# writes either colour order directly, so no channel flip follows. sensor_msgs also names
# "nv24" (4:4:4 semi-planar), which OpenCV has no conversion for: it stays unsupported.
_SEMI_PLANAR_CODES: dict[str, dict[str, int]] = {
    "nv12": {"bgr": cv2.COLOR_YUV2BGR_NV12, "rgb": cv2.COLOR_YUV2RGB_NV12},
    "nv21": {"bgr": cv2.COLOR_YUV2BGR_NV21, "rgb": cv2.COLOR_YUV2RGB_NV21},
}
SUPPORTED_ENCODINGS = (*DECODABLE_ENCODINGS, *_SEMI_PLANAR_CODES)
# Rows of padding beyond an Image's height still read as the frame (hardware buffers aligned
# in height), as long as they are at most an eighth of the height.
MAX_PADDING_ROWS = 64
# Sample depths a 16-bit container commonly holds (10/12/14-bit sensors store their values
# in the low bits): the smallest that holds a frame's brightest value sets its 8-bit scale.
_SENSOR_BITS = (10, 12, 14, 16)

COMPRESSED_FORMATS = ("jpeg", "png")
# sensor_msgs colour encodings (image_encodings::isColor) as named in a CompressedImage format.
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16")
# image_transport's depth codec: a 12-byte header before a PNG of 16-bit depth, not a camera.
COMPRESSED_DEPTH = "compressedDepth"


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into pixels (names encoding / size problem)."""


def _check_color_order(color_order: str) -> None:
    if color_order not in ("bgr", "rgb"):
        raise ValueError(f"color_order must be 'bgr' or 'rgb', got {color_order!r}")


def _to_three_channels(pixels: np.ndarray, stored_order: str, color_order: str) -> np.ndarray:
    if stored_order == "mono":
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    if stored_order != color_order:
        return np.ascontiguousarray(pixels[:, :, ::-1])
    # Views of a message buffer are read-only; consumers (torch.from_numpy) want writable arrays.
    return pixels.copy() if not pixels.flags.writeable or not pixels.flags.c_contiguous else pixels


ImageSource = tuple[str, int, int]
"""Where a frame comes from: its ``(header.frame_id, height, width)``."""


def image_source(message: Any) -> ImageSource:
    """The :data:`ImageSource` of a sensor_msgs/Image (the stamp plays no part)."""
    return (str(message.header.frame_id), int(message.height), int(message.width))


class SensorBitDepth:
    """The bit depth one camera's 16-bit frames are scaled by; it only grows while its source stays.

    Chosen per frame, one hot pixel or a headlight crossing 1024, 4096 or 16384 would change the
    whole frame's brightness 4× from one frame to the next (and the detector's scores with it).
    Keeping the largest depth seen so far on a camera steadies its scale: it can step up at most
    three times, and never back down, until :meth:`follow` sees the camera's source change.
    """

    def __init__(self) -> None:
        self.bits = _SENSOR_BITS[0]
        # The previous frame's source; None before the first frame.
        self.source: ImageSource | None = None

    def follow(self, source: ImageSource) -> None:
        """Record the source of the next frame; start again from 10 bits when it changed.

        Another frame_id or resolution is a restarted or replaced camera, possibly another
        sensor: a 12-bit one kept at the 16-bit scale its predecessor reached would come out
        16× too dark. A new stamp alone is the same camera and keeps the scale.
        """
        if source != self.source:
            self.bits = _SENSOR_BITS[0]
            self.source = source


def scale_to_8_bits(samples: np.ndarray, depth: SensorBitDepth | None = None) -> np.ndarray:
    """uint16 samples as uint8: ``round(value * 255 / (2**bits - 1))``, never clipped.

    ``bits`` is the smallest of 10, 12, 14 and 16 that holds the brightest value seen: this
    frame's, and with ``depth`` (one per camera) every earlier frame's too, which it records.
    A 16-bit container may hold a 10-, 12- or 14-bit sensor's values in its low bits (many
    machine-vision drivers publish Mono12 as mono16): scaled by the full 16-bit range they
    would come out nearly black. Full-range data (HDR cameras, MSB-aligned 12-bit) uses 16
    bits once a frame reaches that range; until then a dark stream is brightened, in steps of
    4× (at most 64×).
    """
    brightest = int(samples.max()) if samples.size else 0
    bits = next(b for b in _SENSOR_BITS if brightest < 1 << b or b == _SENSOR_BITS[-1])
    if depth is not None:
        bits = depth.bits = max(bits, depth.bits)
    # convertScaleAbs rounds and saturates in one pass, without a float copy of the frame.
    return cv2.convertScaleAbs(samples, alpha=255.0 / ((1 << bits) - 1))


def _buffer_pixels(message: Any, encoding: str, layout: PixelLayout) -> np.ndarray:
    """The H×W(×C) samples of ``message`` (uint8 / native uint16), step and size checked."""
    height, width, step = int(message.height), int(message.width), int(message.step)
    row_bytes = width * layout.channels * layout.sample_bytes
    data = np.asarray(message.data, dtype=np.uint8).reshape(-1)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"Image has an empty size {width}x{height}")
    if step < row_bytes or data.size < step * (height - 1) + row_bytes:
        raise ImageDecodeError(
            f"Image {width}x{height} {encoding}: data has {data.size} bytes, step {step}, "
            f"needs at least {step * (height - 1) + row_bytes}"
        )
    extra_rows = (data.size - step * height) / step
    if extra_rows > min(MAX_PADDING_ROWS, height / 8):
        # Far more than the rows hold: most likely another encoding's frame under this name
        # (rgb8 pixels labelled mono8), which would decode to a plausible-looking wrong image.
        # A few rows more are hardware buffers padded in height (a 1080-row frame in a buffer
        # of 1088, 16-row aligned), read as the rows they hold.
        raise ImageDecodeError(
            f"Image {width}x{height} {encoding}: data has {data.size} bytes, far more than "
            f"step {step} x {height} rows = {step * height}"
        )
    if encoding in _PAIRED_ENCODINGS and width % 2:
        raise ImageDecodeError(
            f"Image {width}x{height} {encoding}: YUV 4:2:2 needs an even width "
            "(each U/V pair is shared by two pixels)"
        )
    # A final row without its padding is legal. The rows are a strided view of the data, not
    # of a padded copy: a one-row frame with a huge step would otherwise allocate step bytes.
    rows = np.lib.stride_tricks.as_strided(
        np.ascontiguousarray(data), shape=(height, row_bytes), strides=(step, 1), writeable=False
    )
    if layout.sample_bytes == 2:
        big_endian = bool(getattr(message, "is_bigendian", 0))
        # A contiguous copy of the rows can be viewed as 16-bit whatever the step's parity;
        # astype then swaps the bytes of big-endian data (e.g. dc1394 cameras) to native.
        rows = np.ascontiguousarray(rows).view(">u2" if big_endian else "<u2")
        rows = rows.astype(np.uint16, copy=False)
    samples = rows.reshape(height, width, layout.channels)
    return samples[:, :, 0] if layout.channels == 1 else samples


def _decode_semi_planar(message: Any, encoding: str, color_order: str) -> np.ndarray:
    """An nv12 / nv21 Image as H×W×3 uint8 in ``color_order``, sizes and step checked."""
    height, width, step = int(message.height), int(message.width), int(message.step)
    name = f"Image {width}x{height} {encoding}"
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"Image has an empty size {width}x{height}")
    if height % 2 or width % 2:
        raise ImageDecodeError(
            f"{name}: YUV 4:2:0 needs an even width and height "
            "(each U/V pair is shared by a 2x2 block of pixels)"
        )
    if step < width:
        raise ImageDecodeError(f"{name}: step {step} is shorter than a row of {width} bytes")
    data = np.asarray(message.data, dtype=np.uint8).reshape(-1)
    rows = height + height // 2
    expected = step * rows
    # A final row without its padding is legal, as for the other encodings. More data than
    # the planes need is refused: the chroma plane's start would then be a guess (some
    # hardware buffers align it further down), and a wrong guess gives plausible false colours.
    shortest = expected - (step - width)
    if not shortest <= data.size <= expected:
        unpadded = f" (or {shortest} without the last row's padding)" if shortest < expected else ""
        raise ImageDecodeError(
            f"{name}: data has {data.size} bytes, expected {expected}{unpadded}: step {step} x "
            f"{rows} rows, a Y plane of {height} rows then {height // 2} rows of interleaved chroma"
        )
    if data.size < expected:
        data = np.concatenate([data, np.zeros(expected - data.size, np.uint8)])
    # Contiguous: OpenCV takes the stacked Y-then-chroma rows as one single-channel matrix.
    planes = np.ascontiguousarray(data.reshape(rows, step)[:, :width])
    try:
        return cv2.cvtColor(planes, _SEMI_PLANAR_CODES[encoding][color_order])
    except cv2.error as error:
        raise ImageDecodeError(
            f"{name} could not be converted: OpenCV refused it ({error.err})"
        ) from error


def decode_image_message(
    message: Any, color_order: str = "bgr", depth: SensorBitDepth | None = None
) -> np.ndarray:
    """Decode a sensor_msgs/Image to H×W×3 uint8 in ``color_order``.

    Encodings: bgr8, rgb8, mono8, bgra8, rgba8; mono16, bgr16, rgb16, bgra16, rgba16
    (``is_bigendian`` honoured; scaled to 8 bits by :func:`scale_to_8_bits`); Bayer
    bayer_{rggb,bggr,gbrg,grbg}{8,16} (edge-aware demosaicing); YUV 4:2:2 yuv422 / uyvy
    (UYVY) and yuv422_yuy2 / yuyv (YUYV), and YUV 4:2:0 nv12 / nv21 (``height`` the image's,
    ``step`` the stride of both planes), converted as OpenCV does (BT.601, video range).
    Alpha is dropped. Anything else raises :class:`ImageDecodeError`, as do bad sizes.
    ``depth``: the camera's :class:`SensorBitDepth`, so 16-bit frames keep one scale while
    the frame_id and size stay those of the camera's previous frame.
    """
    _check_color_order(color_order)
    if depth is not None:
        # Here, before any scaling, so the node and the bag reader restart the scale alike.
        depth.follow(image_source(message))
    encoding = message.encoding.lower()
    if encoding in _SEMI_PLANAR_CODES:
        return _decode_semi_planar(message, encoding, color_order)
    layout = DECODABLE_ENCODINGS.get(encoding)
    if layout is None:
        raise ImageDecodeError(
            f"unsupported Image encoding {message.encoding!r} "
            f"(supported: {', '.join(SUPPORTED_ENCODINGS)})"
        )
    pixels = _buffer_pixels(message, encoding, layout)
    stored_order = layout.stored_order
    if stored_order == "cv":
        try:
            # Contiguous: OpenCV's edge-aware demosaicing ignores a row stride wider than the
            # row (padded rows came out scrambled), so padding is dropped first.
            pixels = cv2.cvtColor(np.ascontiguousarray(pixels), layout.cv_code)
        except cv2.error as error:
            raise ImageDecodeError(
                f"Image {message.width}x{message.height} {encoding} could not be converted: "
                f"OpenCV refused it ({error.err})"
            ) from error
        stored_order = "bgr"
    if pixels.dtype == np.uint16:
        # Alpha dropped first: an opaque alpha (65535) must not set the colour's scale.
        pixels = scale_to_8_bits(pixels[:, :, :3] if pixels.ndim == 3 else pixels, depth)
    return _to_three_channels(pixels, stored_order, color_order)


def is_depth_topic(topic: str) -> bool:
    """Whether ``topic`` is an image_transport compressedDepth topic (depth, not a camera)."""
    return topic.rstrip("/").endswith("/" + COMPRESSED_DEPTH)


def compressed_in_rgb_order(image_format: str) -> bool:
    """Whether a CompressedImage of this ``format`` decodes to RGB- rather than BGR-ordered pixels.

    image_transport writes ``"<encoding>; <codec> compressed <stored encoding>"``. Its
    subscriber takes colour data that was not stored as ``bgr…`` to be in RGB order, i.e.
    the publisher compressed RGB pixels without converting them (e.g. "rgb8; png compressed
    rgb8"). Formats without the ``;`` part ("jpeg", "png") are BGR, as OpenCV writes them.
    """
    source, separator, stored = image_format.partition(";")
    return (
        bool(separator)
        and source.strip().lower() in COLOR_ENCODINGS
        and "compressed bgr" not in stored.lower()
    )


def decode_compressed_message(
    message: Any,
    color_order: str = "bgr",
    depth: SensorBitDepth | None = None,
    scale_16_bits: bool = True,
) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg / png, any bit layout OpenCV reads) to H×W×3.

    A 16-bit PNG (image_transport's "mono16; png compressed mono16", "bgr16; png ..." of a
    10/12-bit camera) is scaled to 8 bits by :func:`scale_to_8_bits` with ``depth`` (the
    camera's :class:`SensorBitDepth`, restarted when its frame_id or size changes), as a raw
    16-bit Image is: OpenCV's own 8-bit conversion divides by 256, which leaves a 12-bit
    sensor's frame nearly black. ``scale_16_bits=False`` returns such a frame as uint16 for a
    caller that scales its frames in order on another thread (:func:`finish_16_bit_frame`).
    """
    _check_color_order(color_order)
    buffer = np.asarray(message.data, dtype=np.uint8)
    if COMPRESSED_DEPTH.lower() in message.format.lower():
        raise ImageDecodeError(
            f"CompressedImage with format {message.format!r} is a depth image "
            "(image_transport compressedDepth), not a camera image"
        )
    try:
        # The stored pixel grid, as image_transport's compressed subscriber decodes by default
        # (IMREAD_UNCHANGED) and as image files are read (vision/image_file.py): an EXIF
        # Orientation tag in a JPEG is not applied, so boxes land where other consumers see.
        # Any depth and colour layout as stored (alpha dropped): 16-bit samples are scaled
        # below by the sensor's depth, not by OpenCV's fixed 1/256.
        flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION
        pixels = cv2.imdecode(buffer, flags) if buffer.size else None
    except cv2.error as error:
        # OpenCV raises rather than returning None for some headers, e.g. a size above its
        # CV_IO_MAX_IMAGE_PIXELS; a bad frame must never escape as an exception.
        raise ImageDecodeError(
            f"CompressedImage with format {message.format!r} ({buffer.size} bytes) could not "
            f"be decoded: OpenCV refused it ({error.err})"
        ) from error
    # imdecode refuses a truncated JPEG without saying why; only then is it worth checking.
    if pixels is None and buffer.size and is_truncated_jpeg_buffer(buffer):
        raise ImageDecodeError(
            f"CompressedImage with format {message.format!r} ({buffer.size} bytes) is a "
            "truncated JPEG (no end-of-image marker): the end of the frame is missing"
        )
    if pixels is None:
        raise ImageDecodeError(
            f"CompressedImage with format {message.format!r} ({buffer.size} bytes) "
            "could not be decoded (not a valid jpeg/png)"
        )
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError(
            f"CompressedImage with format {message.format!r} decodes to {pixels.dtype} "
            "samples; only 8- and 16-bit images are supported"
        )
    if pixels.ndim == 2:
        stored_order = "mono"
    else:
        stored_order = "rgb" if compressed_in_rgb_order(message.format) else "bgr"
    if scale_16_bits:
        pixels = finish_16_bit_frame(message, pixels, depth)
    return _to_three_channels(pixels, stored_order, color_order)


def finish_16_bit_frame(
    message: Any, pixels: np.ndarray, depth: SensorBitDepth | None = None
) -> np.ndarray:
    """Scale a frame ``decode_compressed_message(..., scale_16_bits=False)`` left as uint16.

    For the caller that decodes a camera's frames on several threads, out of order, but must
    scale them in order: a camera's 16-bit scale depends on the frames before it. 8-bit
    frames are returned as they are.
    """
    if pixels.dtype != np.uint16:
        return pixels
    if depth is not None:
        depth.follow((str(message.header.frame_id), *pixels.shape[:2]))
    return scale_to_8_bits(pixels, depth)


def decode_any_image(
    message: Any, msgtype: str, color_order: str = "bgr", depth: SensorBitDepth | None = None
) -> np.ndarray:
    """Decode an Image or CompressedImage given its ROS type name (``depth``: see above)."""
    if msgtype == IMAGE_TYPE:
        return decode_image_message(message, color_order, depth)
    if msgtype == COMPRESSED_IMAGE_TYPE:
        return decode_compressed_message(message, color_order, depth)
    raise ImageDecodeError(f"{msgtype} is not an image type (expected one of {IMAGE_TYPES})")


def encode_image_message(
    typestore: Any, pixels: np.ndarray, header: Any, encoding: str = "bgr8"
) -> Any:
    """Build a sensor_msgs/Image from uint8 pixels (H×W×C matching ``encoding``).

    ``encoding`` is one of bgr8, rgb8, mono8, bgra8, rgba8 (what the outputs publish).
    """
    if encoding not in RAW_ENCODINGS:
        raise ValueError(
            f"cannot encode an Image as {encoding!r} (supported: {', '.join(RAW_ENCODINGS)})"
        )
    channels = RAW_ENCODINGS[encoding][0]
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    shape_channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if shape_channels != channels:
        raise ValueError(f"{encoding} needs {channels} channels, pixels have shape {pixels.shape}")
    height, width = pixels.shape[:2]
    image_type = typestore.types[IMAGE_TYPE]
    return image_type(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=np.ascontiguousarray(pixels).reshape(-1),
    )


def encode_compressed_message(
    typestore: Any,
    pixels_bgr: np.ndarray,
    header: Any,
    image_format: str = "jpeg",
    quality: int = 90,
) -> Any:
    """Build a sensor_msgs/CompressedImage (jpeg or png) from BGR uint8 pixels."""
    if image_format not in COMPRESSED_FORMATS:
        raise ValueError(f"unsupported compressed format {image_format!r} (use jpeg or png)")
    extension = ".jpg" if image_format == "jpeg" else ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if image_format == "jpeg" else []
    ok, buffer = cv2.imencode(extension, pixels_bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels_bgr.shape} image as {image_format}")
    compressed_type = typestore.types[COMPRESSED_IMAGE_TYPE]
    # image_transport's "<encoding>; <codec> compressed <encoding>" is what rqt/foxglove show.
    return compressed_type(
        header=header, format=f"bgr8; {image_format} compressed bgr8", data=buffer.reshape(-1)
    )


def make_header(typestore: Any, stamp_ns: int, frame_id: str) -> Any:
    """Build a std_msgs/Header for ``stamp_ns`` (nanoseconds since the epoch)."""
    time_type = typestore.types["builtin_interfaces/msg/Time"]
    header_type = typestore.types["std_msgs/msg/Header"]
    return header_type(
        stamp=time_type(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
        frame_id=frame_id,
    )


def header_stamp_ns(header: Any) -> int:
    """Nanoseconds of a std_msgs/Header stamp."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
