"""Raw camera encodings as drivers publish them: Bayer, YUV 4:2:2 and 4:2:0, 16-bit, big-endian.

Every message is built here from a real frame (OpenCV's vtest.avi, people on a campus path)
or from flat colour patches, with encoders written independently of the decoder (a Bayer
mosaic by sampling, BT.601 YUV by its formula), serialized to CDR and decoded back.
"""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from support.sample_video_frames import sample_video, video_frame

from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.decode_ahead import decode_in_order
from togethernet_ros.bag.detection_messages import message_to_detections
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    ImageDecodeError,
    SensorBitDepth,
    decode_any_image,
    decode_compressed_message,
    decode_image_message,
    encode_compressed_message,
    encode_image_message,
    make_header,
    scale_to_8_bits,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

from .bag_samples import START_NS, scene
from .blob_detector import BlobDetector

TYPESTORE = create_typestore()
BAYER_PATTERNS = ("rggb", "bggr", "gbrg", "grbg")
# BGR values of flat 16×16 patches: red, green, blue, yellow, white, dark grey.
PATCHES = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 255, 255), (60, 60, 60))


@pytest.fixture(scope="module")
def real_frame() -> np.ndarray:
    """Frame 700 of OpenCV's vtest.avi (768×576 BGR), or skip with the reason."""
    return video_frame(sample_video(), 700)


def _patches() -> np.ndarray:
    image = np.zeros((16, 16 * len(PATCHES), 3), np.uint8)
    for index, colour in enumerate(PATCHES):
        image[:, 16 * index : 16 * (index + 1)] = colour
    return image


def _patch_centres(decoded: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in decoded[8, 16 * i + 8]) for i in range(len(PATCHES))]


def bayer_mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """The Bayer mosaic a sensor with ``pattern`` (its top-left 2×2, row by row) records."""
    channel = {"b": 0, "g": 1, "r": 2}
    mosaic = np.zeros(bgr.shape[:2], bgr.dtype)
    for letter, (dy, dx) in zip(pattern, ((0, 0), (0, 1), (1, 0), (1, 1)), strict=True):
        mosaic[dy::2, dx::2] = bgr[dy::2, dx::2, channel[letter]]
    return mosaic


def _bt601(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V (float) of BGR pixels: ITU-R BT.601, video range (Y 16..235, chroma 16..240)."""
    blue, green, red = (bgr[:, :, i].astype(np.float64) / 255.0 for i in range(3))
    y = 16 + 65.481 * red + 128.553 * green + 24.966 * blue
    u = 128 - 37.797 * red - 74.203 * green + 112.0 * blue
    v = 128 + 112.0 * red - 93.786 * green - 18.214 * blue
    return y, u, v


def _to_bytes(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def yuv422_packed(bgr: np.ndarray, layout: str) -> np.ndarray:
    """BT.601 video-range YUV 4:2:2 (chroma averaged over pixel pairs), packed H×W×2."""
    y, u, v = _bt601(bgr)
    u_pair = (u[:, 0::2] + u[:, 1::2]) / 2
    v_pair = (v[:, 0::2] + v[:, 1::2]) / 2
    packed = np.zeros((*bgr.shape[:2], 2), np.float64)
    packed[:, :, 0] = y
    chroma = packed[:, :, 1]
    chroma[:, 0::2], chroma[:, 1::2] = u_pair, v_pair
    if layout == "uyvy":  # U Y0 V Y1: chroma first
        packed = packed[:, :, ::-1]
    return _to_bytes(packed)


def yuv420_semi_planar(bgr: np.ndarray, layout: str) -> np.ndarray:
    """BT.601 video-range NV12 / NV21: the Y rows, then (H/2) rows of interleaved chroma.

    Chroma is averaged over 2×2 blocks; each chroma row holds U,V pairs (nv12) or V,U (nv21).
    """
    y, u, v = _bt601(bgr)
    height, width = y.shape

    def block_mean(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    first, second = (u, v) if layout == "nv12" else (v, u)
    chroma = np.zeros((height // 2, width), np.float64)
    chroma[:, 0::2], chroma[:, 1::2] = block_mean(first), block_mean(second)
    return _to_bytes(np.vstack([y, chroma]))


def _message(
    samples: np.ndarray,
    encoding: str,
    big_endian: bool = False,
    pad: int = 0,
    height: int | None = None,
):
    """A CDR round-tripped sensor_msgs/Image of ``samples`` (uint8 or uint16), rows padded.

    ``height``: the image height the message states, when it differs from the sample rows
    (nv12 / nv21 store 1.5 rows of samples per image row).
    """
    sample_rows, width = samples.shape[:2]
    height = sample_rows if height is None else height
    dtype = ">u2" if big_endian else "<u2"
    stored = samples.astype(dtype) if samples.dtype == np.uint16 else samples
    rows = np.ascontiguousarray(stored).view(np.uint8).reshape(sample_rows, -1)
    rows = np.hstack([rows, np.full((sample_rows, pad), 77, np.uint8)])
    message = TYPESTORE.types[IMAGE_TYPE](
        header=make_header(TYPESTORE, START_NS, "camera"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=rows.shape[1],
        data=rows.reshape(-1),
    )
    raw = TYPESTORE.serialize_cdr(message, IMAGE_TYPE)
    return TYPESTORE.deserialize_cdr(raw, IMAGE_TYPE)


def _mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_bayer_patches_keep_their_colours(pattern):
    patches = _patches()
    message = _message(bayer_mosaic(patches, pattern), f"bayer_{pattern}8")
    assert _patch_centres(decode_image_message(message, "bgr")) == list(PATCHES)
    rgb = decode_image_message(message, "rgb")
    assert _patch_centres(rgb) == [colour[::-1] for colour in PATCHES]


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_bayer_real_frame_demosaics_close_to_the_original(real_frame, pattern):
    mosaic = bayer_mosaic(real_frame, pattern)
    # Padded rows: OpenCV's edge-aware demosaicing scrambled them when given the stride.
    decoded = decode_image_message(_message(mosaic, f"bayer_{pattern}8", pad=2))
    assert decoded.shape == real_frame.shape and decoded.dtype == np.uint8
    # Demosaicing interpolates two thirds of the samples: ~2.6 levels off on this frame; a
    # pattern read one pixel shifted (OpenCV's naming taken literally) is ~25 levels off.
    assert _mean_error(decoded, real_frame) < 4.0
    # 16-bit Bayer (full range) demosaics the same way and scales back to these values.
    wide = bayer_mosaic(real_frame.astype(np.uint16) * 257, pattern)
    decoded16 = decode_image_message(_message(wide, f"bayer_{pattern}16", big_endian=True, pad=3))
    assert _mean_error(decoded16, real_frame) < 4.0


@pytest.mark.parametrize(("encoding", "layout"), [("yuv422", "uyvy"), ("uyvy", "uyvy"),
                                                  ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")])  # fmt: skip
def test_yuv422_patches_and_real_frame(real_frame, encoding, layout):
    patches = _patches()
    decoded = decode_image_message(_message(yuv422_packed(patches, layout), encoding), "bgr")
    for got, want in zip(_patch_centres(decoded), PATCHES, strict=True):
        assert np.abs(np.subtract(got, want)).max() <= 3, (got, want)
    real = decode_image_message(_message(yuv422_packed(real_frame, layout), encoding, pad=4), "rgb")
    # Chroma at half horizontal resolution: small errors at colour edges only.
    assert _mean_error(real[:, :, ::-1], real_frame) < 3.0


def test_yuv422_with_an_odd_width_is_refused_by_name():
    message = _message(np.zeros((4, 5, 2), np.uint8), "yuv422")
    with pytest.raises(ImageDecodeError, match=r"5x4 yuv422: YUV 4:2:2 needs an even width"):
        decode_image_message(message)


@pytest.mark.parametrize("encoding", ["nv12", "nv21"])
def test_yuv420_patches_keep_their_colours_in_both_orders(encoding):
    planes = yuv420_semi_planar(_patches(), encoding)
    message = _message(planes, encoding, height=16)
    decoded = decode_image_message(message, "bgr")
    assert decoded.shape == (16, 16 * len(PATCHES), 3) and decoded.dtype == np.uint8
    for got, want in zip(_patch_centres(decoded), PATCHES, strict=True):
        assert np.abs(np.subtract(got, want)).max() <= 3, (got, want)
    np.testing.assert_array_equal(decode_image_message(message, "rgb"), decoded[:, :, ::-1])
    # The chroma order matters: the same bytes read as the other encoding turn red to blue.
    message.encoding = "nv21" if encoding == "nv12" else "nv12"
    red = _patch_centres(decode_image_message(message, "bgr"))[0]
    assert red[0] > 200 and red[2] < 220, red


@pytest.mark.parametrize("encoding", ["nv12", "nv21"])
def test_yuv420_real_frame_with_a_padded_step(real_frame, encoding):
    planes = yuv420_semi_planar(real_frame, encoding)
    height = real_frame.shape[0]
    decoded = decode_image_message(_message(planes, encoding, height=height), "rgb")
    # Chroma at a quarter of the resolution: ~0.4 levels off on this frame.
    assert _mean_error(decoded[:, :, ::-1], real_frame) < 1.0
    # Both planes padded to the same step (bytes 77) decode to the same pixels, also when
    # the last chroma row comes without its padding.
    padded = _message(planes, encoding, pad=6, height=height)
    assert padded.step == real_frame.shape[1] + 6
    np.testing.assert_array_equal(decode_image_message(padded, "rgb"), decoded)
    padded.data = padded.data[:-6]
    np.testing.assert_array_equal(decode_image_message(padded, "rgb"), decoded)


def test_yuv420_sizes_that_do_not_match_the_planes_are_refused_with_the_numbers():
    planes = yuv420_semi_planar(scene(0, height=6, width=8), "nv12")
    message = _message(planes, "nv12", pad=2, height=6)  # step 10, 9 rows: 90 bytes
    full = message.data
    message.data = full[:-5]
    with pytest.raises(
        ImageDecodeError,
        match=r"8x6 nv12: data has 85 bytes, expected 90 \(or 88 without the last row's "
        r"padding\): step 10 x 9 rows, a Y plane of 6 rows then 3 rows of interleaved chroma",
    ):
        decode_image_message(message)
    # Trailing bytes would leave the chroma plane's start a guess.
    message.data = np.concatenate([full, np.zeros(20, np.uint8)])
    with pytest.raises(ImageDecodeError, match=r"8x6 nv12: data has 110 bytes, expected 90"):
        decode_image_message(message)
    # A publisher stating the buffer's rows (1.5 x 8) rather than the image height (8).
    stated_rows = _message(yuv420_semi_planar(scene(0, height=8, width=8), "nv21"), "nv21")
    assert stated_rows.height == 12
    with pytest.raises(ImageDecodeError, match=r"8x12 nv21: data has 96 bytes, expected 144"):
        decode_image_message(stated_rows)
    message.data, message.step = full, 6
    with pytest.raises(ImageDecodeError, match=r"8x6 nv12: step 6 is shorter than a row of 8"):
        decode_image_message(message)


@pytest.mark.parametrize(("width", "height"), [(5, 4), (4, 3)])
def test_yuv420_with_an_odd_size_is_refused_by_name(width, height):
    rows = height + (height + 1) // 2
    message = _message(np.zeros((rows, width), np.uint8), "nv21", height=height)
    with pytest.raises(
        ImageDecodeError, match=rf"{width}x{height} nv21: YUV 4:2:0 needs an even width and height"
    ):
        decode_image_message(message)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("encoding", ["bgr16", "rgb16", "bgra16", "rgba16", "mono16"])
def test_16_bit_full_range_real_frame_is_exact(real_frame, encoding, big_endian):
    wide = real_frame.astype(np.uint16) * 257  # 0..255 -> 0..65535
    samples = {
        "bgr16": wide,
        "rgb16": wide[:, :, ::-1],
        "bgra16": np.dstack([wide, np.full(wide.shape[:2], 65535, np.uint16)]),
        "rgba16": np.dstack([wide[:, :, ::-1], np.zeros(wide.shape[:2], np.uint16)]),
        "mono16": wide[:, :, 1],
    }[encoding]
    # An odd padding: 16-bit rows need not start at an even byte offset.
    decoded = decode_image_message(_message(samples, encoding, big_endian, pad=3), "bgr")
    expected = np.repeat(real_frame[:, :, 1:2], 3, axis=2) if encoding == "mono16" else real_frame
    np.testing.assert_array_equal(decoded, expected)


def test_16_bit_byte_order_follows_is_bigendian(real_frame):
    wide = real_frame.astype(np.uint16) * 256 + np.uint16(100)  # low byte differs from high
    message = _message(wide, "bgr16", big_endian=True)
    decoded = decode_image_message(message)
    np.testing.assert_array_equal(decoded, decode_image_message(_message(wide, "bgr16")))
    assert _mean_error(decoded, real_frame) < 0.5
    message.is_bigendian = 0  # the same bytes read the wrong way round are another image
    assert _mean_error(decode_image_message(message), real_frame) > 20


def test_12_bit_values_in_16_bit_containers_are_not_black(real_frame):
    # Mono12 / RGB12 sensors published as mono16 / rgb16 with their values in the low bits.
    twelve = np.round(real_frame.astype(np.float64) * 4095 / 255).astype(np.uint16)
    np.testing.assert_array_equal(decode_image_message(_message(twelve, "bgr16")), real_frame)
    # An opaque 16-bit alpha channel does not set the colour's scale.
    with_alpha = np.dstack([twelve, np.full(twelve.shape[:2], 65535, np.uint16)])
    np.testing.assert_array_equal(decode_image_message(_message(with_alpha, "bgra16")), real_frame)
    gray = decode_image_message(_message(twelve[:, :, 0], "mono16"))
    np.testing.assert_array_equal(gray[:, :, 0], real_frame[:, :, 0])


def test_scale_to_8_bits_numbers():
    def scaled(*values: int) -> list[int]:
        return scale_to_8_bits(np.array([values], np.uint16))[0].tolist()

    assert scaled(0, 512, 1023) == [0, 128, 255]  # 10-bit
    assert scaled(0, 2048, 4095) == [0, 128, 255]  # 12-bit
    assert scaled(4096, 16383) == [64, 255]  # 14-bit
    assert scaled(16384, 32768, 65535) == [64, 128, 255]  # 16-bit
    assert scaled(0, 0) == [0, 0]
    assert scale_to_8_bits(np.zeros((2, 3, 3), np.uint16)).dtype == np.uint8


def _hot_pixel_frames() -> list[np.ndarray]:
    """A 14-bit-range scene at 3000 counts; in the second frame one pixel reaches 16384."""
    frames = [np.full((4, 6), 3000, np.uint16) for _ in range(3)]
    for frame in frames:
        frame[0, 0] = 16383
    frames[1][0, 0] = 16384
    return frames


def test_one_camera_keeps_one_16_bit_scale_once_a_frame_needed_a_larger_one():
    # Per frame, one pixel crossing 16384 would make the whole scene 4x darker for that frame
    # only: the detector would see the brightness flicker.
    depth = SensorBitDepth()
    first, crossing, after = (scale_to_8_bits(f, depth)[1, 1] for f in _hot_pixel_frames())
    assert first == 47  # 3000 * 255 / 16383, scaled as 14-bit
    assert crossing == after == 12  # 3000 * 255 / 65535: 16-bit from then on
    assert depth.bits == 16
    assert [scale_to_8_bits(f)[1, 1] for f in _hot_pixel_frames()] == [47, 12, 47]


def test_the_bag_reader_keeps_one_16_bit_scale_per_camera(tmp_path):
    bag = tmp_path / "hdr"
    with BagWriter(bag, storage="mcap", typestore=TYPESTORE) as writer:
        for index, frame in enumerate(_hot_pixel_frames()):
            for topic in ("/hdr/image_raw", "/other/image_raw"):
                # The other camera never leaves the 14-bit range: its scale must not change.
                samples = frame if topic == "/hdr/image_raw" else np.minimum(frame, 16383)
                message = _message(samples, "mono16")
                message.header = make_header(TYPESTORE, START_NS + index * 10**8, "cam")
                writer.write(topic, IMAGE_TYPE, START_NS + index * 10**8, message)
    with BagReader(bag) as reader:
        values: dict[str, list[int]] = {}
        for frame in reader.frames():
            values.setdefault(frame.topic, []).append(int(frame.image[1, 1, 0]))
    assert values == {"/hdr/image_raw": [47, 12, 12], "/other/image_raw": [47, 47, 47]}


def _scaled(value: int, bits: int) -> int:
    """``value`` scaled to 8 bits by a ``bits``-bit sensor's range, as the decoder must."""
    return round(value * 255 / (2**bits - 1))


def _camera_frame(frame_id: str, shape: tuple[int, int], stamp_ns: int, hot: bool = False):
    """A mono16 frame of 3000 counts (12-bit range); ``hot``: one pixel in the 16-bit range."""
    samples = np.full(shape, 3000, np.uint16)
    if hot:
        samples[0, 0] = 40000
    message = _message(samples, "mono16")
    message.header = make_header(TYPESTORE, stamp_ns, frame_id)
    return message


@pytest.mark.parametrize(
    ("frame_id", "shape", "bits"),
    [
        ("cam", (4, 6), 16),  # same source, later stamp: the 16-bit scale stays (no flicker)
        ("cam_replaced", (4, 6), 12),  # another frame_id: a new camera, scale restarts
        ("cam", (6, 4), 12),  # another resolution: restarted
        ("cam", (4, 8), 12),  # another width only: restarted
    ],
)
def test_a_camera_whose_source_changes_restarts_its_16_bit_scale(frame_id, shape, bits):
    depth = SensorBitDepth()
    first = decode_image_message(_camera_frame("cam", (4, 6), START_NS, hot=True), depth=depth)
    assert first[1, 1, 0] == _scaled(3000, 16) == 12
    # A compressed frame carries no bit depth and no source for it: the scale is left alone.
    header = make_header(TYPESTORE, START_NS, "cam_replaced")
    jpeg = encode_compressed_message(TYPESTORE, np.zeros((8, 8, 3), np.uint8), header)
    decode_any_image(jpeg, COMPRESSED_IMAGE_TYPE, "bgr", depth)
    assert (depth.bits, depth.source) == (16, ("cam", 4, 6))
    later = decode_image_message(_camera_frame(frame_id, shape, START_NS + 10**8), depth=depth)
    assert later[1, 1, 0] == _scaled(3000, bits)
    assert (depth.bits, depth.source) == (bits, (frame_id, *shape))


def test_the_bag_reader_restarts_a_topics_16_bit_scale_when_its_source_changes(tmp_path):
    bag = tmp_path / "replaced"
    sequence = [  # (frame_id, shape, hot) of each frame on /cam/image_raw
        ("cam", (4, 6), True),
        ("cam", (4, 6), False),  # later stamp, same camera: stays at 16 bits
        ("cam_new", (4, 6), False),  # replaced camera: 12 bits
        ("cam_new", (4, 6), True),
        ("cam_new", (6, 4), False),  # restarted at another resolution: 12 bits
    ]
    with BagWriter(bag, storage="mcap", typestore=TYPESTORE) as writer:
        for index, (frame_id, shape, hot) in enumerate(sequence):
            stamp = START_NS + index * 10**8
            writer.write(
                "/cam/image_raw", IMAGE_TYPE, stamp, _camera_frame(frame_id, shape, stamp, hot)
            )
            # One source throughout on another topic: the first camera's changes are not its.
            writer.write(
                "/other/image_raw", IMAGE_TYPE, stamp, _camera_frame("other", (4, 6), stamp, hot)
            )
    with BagReader(bag) as reader:
        values: dict[str, list[int]] = {}
        for frame in reader.frames():
            values.setdefault(frame.topic, []).append(int(frame.image[1, 1, 0]))
    assert values == {
        "/cam/image_raw": [_scaled(3000, bits) for bits in (16, 16, 12, 16, 12)],
        "/other/image_raw": [_scaled(3000, 16)] * 5,
    }


def _png16(samples: np.ndarray, encoding: str, frame_id: str = "cam", stamp_ns: int = START_NS):
    """A CompressedImage of 16-bit samples as image_transport's png codec stores them."""
    ok, buffer = cv2.imencode(".png", samples)
    assert ok
    return TYPESTORE.types[COMPRESSED_IMAGE_TYPE](
        header=make_header(TYPESTORE, stamp_ns, frame_id),
        format=f"{encoding}; png compressed {encoding}",
        data=buffer.reshape(-1),
    )


@pytest.mark.parametrize("encoding", ["mono16", "bgr16", "rgb16"])
def test_a_12_bit_camera_compressed_as_16_bit_png_decodes_as_its_raw_frame(real_frame, encoding):
    # OpenCV alone divides 16-bit samples by 256: a 12-bit sensor's frame came out at 0..15.
    twelve = np.round(real_frame.astype(np.float64) * 4095 / 255).astype(np.uint16)
    stored = {"mono16": twelve[:, :, 1], "bgr16": twelve, "rgb16": twelve[:, :, ::-1]}[encoding]
    compressed = decode_compressed_message(_png16(np.ascontiguousarray(stored), encoding))
    raw = decode_image_message(_message(stored, encoding))
    np.testing.assert_array_equal(compressed, raw)
    expected = np.repeat(real_frame[:, :, 1:2], 3, axis=2) if encoding == "mono16" else real_frame
    np.testing.assert_array_equal(compressed, expected)
    assert decode_compressed_message(_png16(stored, encoding), "rgb")[0, 0].tolist() == (
        expected[0, 0, ::-1].tolist()
    )


def test_a_16_bit_png_camera_keeps_its_scale_and_restarts_it_with_its_source():
    depth = SensorBitDepth()
    hot, plain = _hot_pixel_frames()[1], _hot_pixel_frames()[0]
    assert decode_compressed_message(_png16(plain, "mono16"), depth=depth)[1, 1, 0] == 47
    assert decode_compressed_message(_png16(hot, "mono16"), depth=depth)[1, 1, 0] == 12
    assert decode_compressed_message(_png16(plain, "mono16"), depth=depth)[1, 1, 0] == 12
    assert depth.source == ("cam", 4, 6)
    replaced = _png16(plain, "mono16", frame_id="cam_new")
    assert decode_compressed_message(replaced, depth=depth)[1, 1, 0] == 47
    # 8-bit frames neither read nor move the scale.
    jpeg = encode_compressed_message(TYPESTORE, scene(0), make_header(TYPESTORE, START_NS, "x"))
    decode_compressed_message(jpeg, depth=depth)
    assert (depth.bits, depth.source) == (14, ("cam_new", 4, 6))


@pytest.mark.parametrize("threads", [1, 4])
def test_the_bag_reader_scales_16_bit_png_frames_in_bag_order_on_any_thread(tmp_path, threads):
    bag = tmp_path / "png16"
    frames = _hot_pixel_frames() * 4  # the hot frame every third: 16 bits from the second on
    with BagWriter(bag, storage="mcap", typestore=TYPESTORE) as writer:
        for index, samples in enumerate(frames):
            stamp = START_NS + index * 10**8
            writer.write(
                "/cam/image_raw/compressed",
                COMPRESSED_IMAGE_TYPE,
                stamp,
                _png16(samples, "mono16", stamp_ns=stamp),
            )
    with BagReader(bag) as reader:
        records = ((record, True) for record in reader.records(reader.image_topics))
        decoded = [frame for _, frame in decode_in_order(reader, records, "bgr", threads)]
    assert [int(frame.image[1, 1, 0]) for frame in decoded] == [47] + [12] * (len(frames) - 1)
    assert {frame.image.dtype for frame in decoded} == {np.dtype(np.uint8)}


def test_bad_sizes_and_unsupported_encodings_are_named():
    mosaic = bayer_mosaic(scene(0, height=6, width=8), "rggb")
    message = _message(mosaic, "bayer_rggb8", pad=2)
    message.data = message.data[:-20]
    with pytest.raises(ImageDecodeError, match=r"8x6 bayer_rggb8: data has 40 bytes, step 10"):
        decode_image_message(message)
    wide = _message(np.zeros((4, 4), np.uint16), "mono16")
    wide.step = 7  # fewer bytes than a row of 4 16-bit samples
    with pytest.raises(ImageDecodeError, match=r"4x4 mono16: .* step 7, needs at least"):
        decode_image_message(wide)
    # nv24 (4:4:4 semi-planar) is a sensor_msgs name OpenCV has no conversion for.
    for encoding in ("nv24", "32FC1", "16UC1"):
        message = _message(np.zeros((4, 4), np.uint8), encoding)
        with pytest.raises(ImageDecodeError, match=rf"unsupported Image encoding '{encoding}'"):
            decode_image_message(message)
    with pytest.raises(ImageDecodeError, match=r"supported: .*bayer_rggb8.*yuv422.*nv12, nv21\)"):
        decode_image_message(message)


def test_more_data_than_the_rows_hold_is_refused_with_the_numbers():
    # rgb8 pixels labelled mono8 would otherwise decode to a plausible wrong image.
    message = _message(np.zeros((4, 6), np.uint8), "mono8")
    message.data = np.zeros(4 * 6 * 3, np.uint8)
    with pytest.raises(ImageDecodeError, match=r"6x4 mono8: data has 72 bytes, far more than step"):
        decode_image_message(message)
    # A hardware buffer padded in height (1080 rows in 1088) is the frame and its padding.
    rows = np.arange(40 * 6, dtype=np.uint8).reshape(40, 6)
    padded = _message(rows, "mono8")
    padded.data = np.concatenate([rows.reshape(-1), np.full(5 * 6, 255, np.uint8)])
    np.testing.assert_array_equal(decode_image_message(padded)[:, :, 0], rows)
    # Not contiguous (a view of every other byte): read as the values, not the memory.
    spaced = np.zeros(2 * rows.size, np.uint8)
    spaced[::2] = rows.reshape(-1)
    padded.data = spaced[::2]
    np.testing.assert_array_equal(decode_image_message(padded)[:, :, 0], rows)


def test_a_one_row_frame_with_a_huge_step_costs_its_data_not_its_step():
    # step is a uint32 field: 30 bytes could ask for 4 GiB of padding.
    message = _message(np.zeros((1, 10, 3), np.uint8), "bgr8")
    message.step, message.data = 2**32 - 1, np.arange(30, dtype=np.uint8)
    tracemalloc.start()
    try:
        decoded = decode_image_message(message)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(decoded.reshape(-1), np.arange(30))
    assert peak < 2**20


def test_encode_image_message_writes_only_8_bit_encodings_and_round_trips():
    header = make_header(TYPESTORE, START_NS, "camera")
    image = scene(2)
    message = encode_image_message(TYPESTORE, image, header, "bgr8")
    assert (message.step, message.is_bigendian) == (128 * 3, 0)
    np.testing.assert_array_equal(decode_image_message(message), image)
    for encoding in ("mono16", "bayer_rggb8", "yuv422"):
        with pytest.raises(ValueError, match=rf"cannot encode an Image as '{encoding}'"):
            encode_image_message(TYPESTORE, image, header, encoding)


def test_bag_run_processes_bayer_and_yuv_cameras(tmp_path):
    """A GMSL-style Bayer camera and a usb_cam YUV camera, recorded and run offline."""
    bag = tmp_path / "drive"
    topics = {"/gmsl/image_raw": "bayer_grbg8", "/usb_cam/image_raw": "yuv422_yuy2"}
    with BagWriter(bag, storage="mcap", typestore=TYPESTORE) as writer:
        for index in range(4):
            for topic, encoding in topics.items():
                frame = scene(index)
                samples = bayer_mosaic(frame, "grbg") if encoding.startswith("bayer") else None
                samples = yuv422_packed(frame, "yuyv") if samples is None else samples
                message = _message(samples, encoding)
                message.header = make_header(TYPESTORE, START_NS + index * 10**8, "cam")
                writer.write(topic, IMAGE_TYPE, START_NS + index * 10**8, message)
    with BagReader(bag) as reader:
        assert [f.image.shape for f in reader.frames()] == [(96, 128, 3)] * 8
        assert reader.problems.lines() == []
    report = run_bag(bag, tmp_path / "out", BlobDetector(), BagRunOptions())
    assert report.frames_processed == 8
    assert report.problems == []
    boxes: dict[str, list] = {}
    with Reader(tmp_path / "out") as reader:
        for connection, _, raw in reader.messages():
            if connection.topic.endswith("/detections_raw"):
                message = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                found = message_to_detections(message, BlobDetector.class_names)
                boxes.setdefault(connection.topic, []).append(found.boxes)
    assert sorted(boxes) == ["/gmsl/detections_raw", "/usb_cam/detections_raw"]
    for found in boxes.values():
        # The bright rectangle of scene(i), where it was drawn (demosaicing and chroma
        # subsampling may soften its edge by a pixel).
        for index, box in enumerate(found):
            np.testing.assert_allclose(box, [[8 + 4 * index, 20, 41 + 4 * index, 71]], atol=1)
