"""`togethernet predict`: detections (JSON), annotated and dehazed images or videos."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from togethernet_ros.inference.cli_arguments import (
    add_backend_arguments,
    add_weights_arguments,
    check_output_folder,
    parse_input_size,
    parse_max_detections,
    parse_positive_int,
    parse_unit_interval,
)
from togethernet_ros.inference.command_errors import reports_user_errors
from togethernet_ros.inference.detector import DEFAULT_MAX_DETECTIONS
from togethernet_ros.inference.model_compilation import COMPILE_MODES

if TYPE_CHECKING:
    from togethernet_ros.inference.detector import Detector
    from togethernet_ros.inference.media import Frame, MediaSource
    from togethernet_ros.inference.result import ImageResult

HELP = "detect objects (and dehaze) in an image, a folder of images or a video"
LOGGER = logging.getLogger("togethernet_ros")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `togethernet predict`."""
    add_weights_arguments(parser)
    parser.add_argument("--source", required=True, help="image file, folder of images, or video")
    parser.add_argument("--output", required=True, help="output folder (created)")
    add_backend_arguments(parser, default_device="auto")
    parser.add_argument(
        "--input-size",
        type=parse_input_size,
        default=None,
        help="640 or HxW, e.g. 384x640 (default: the size the weights were trained at where "
        "the checkpoint records it, else 640; an existing --onnx file: its exported size)",
    )
    parser.add_argument(
        "--conf",
        type=parse_unit_interval,
        default=0.5,
        help="score threshold (default 0.5; the node's default is 0.3)",
    )
    parser.add_argument(
        "--nms",
        type=parse_unit_interval,
        default=0.3,
        help="NMS IoU threshold (default 0.3; the node's default is 0.45)",
    )
    parser.add_argument(
        "--max-detections",
        type=parse_max_detections,
        default=DEFAULT_MAX_DETECTIONS,
        metavar="N",
        help="keep at most N detections per image, the highest-scoring across classes after "
        f"NMS; 'none' = no cap (default: {DEFAULT_MAX_DETECTIONS})",
    )
    parser.add_argument(
        "--batch-size", type=parse_positive_int, default=1, help="images per forward pass"
    )
    parser.add_argument(
        "--no-dehazed", action="store_true", help="skip the restoration branch (faster)"
    )
    parser.add_argument("--no-annotated", action="store_true", help="do not write annotated output")
    parser.add_argument(
        "--max-frames", type=parse_positive_int, default=None, help="stop after N images/frames"
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        default=None,
        help="torch backend: run the model through torch.compile in this mode (compiles for "
        "tens of seconds per batch shape first)",
    )


@reports_user_errors("predict")
def run(args: argparse.Namespace) -> int:
    """Run the detector over the source and write everything into --output."""
    from tqdm import tqdm

    from togethernet_ros.inference.cpu_threads import limit_cpu_threads
    from togethernet_ros.inference.factory import create_detector
    from togethernet_ros.inference.media import MediaSource

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    num_threads = limit_cpu_threads(args.threads)
    output = Path(args.output)
    check_output_folder(output, "--output")
    source = MediaSource(args.source, max_frames=args.max_frames)
    _warn_about_other_files(source)
    restore = not args.no_dehazed
    _check_sources_kept(source, output, not args.no_annotated, restore)
    ignored = [
        option
        for option, value in (("--onnx", args.onnx), ("--cache-dir", args.cache_dir))
        if value and args.backend != "onnxruntime"
    ]
    if ignored:
        # Most likely a forgotten --backend onnxruntime: the run would use the torch model.
        LOGGER.warning(
            "%s only apply to --backend onnxruntime; the %s backend runs the weights and "
            "ignores %s",
            " and ".join(ignored),
            args.backend,
            "them" if len(ignored) > 1 else "it",
        )
    detector = create_detector(
        args.weights,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        input_size=args.input_size,
        conf_threshold=args.conf,
        nms_threshold=args.nms,
        color_order="bgr",
        allow_untrained=args.allow_untrained,
        onnx_path=args.onnx,
        cache_dir=args.cache_dir,
        max_batch_size=max(args.batch_size, 1),
        compile_mode=args.compile,
        num_threads=num_threads,
        max_detections=args.max_detections,
    )
    created = not output.exists()
    try:
        # Made once the weights have loaded: a refused checkpoint leaves no empty output folder.
        output.mkdir(parents=True, exist_ok=True)
    except OSError:
        detector.close()
        raise
    if restore and not detector.supports_restoration:
        # A detection-only ONNX export: detections are still wanted, as the node does.
        LOGGER.warning(
            "the ONNX export has no restoration variant: no dehazed images are written "
            "(export both variants to get them, or pass --no-dehazed)"
        )
        restore = False
    header = {
        "source": str(args.source),
        "weights": args.weights,
        "onnx": str(args.onnx)
        if args.onnx and detector.backend.startswith("onnxruntime")
        else None,
        "untrained": bool(getattr(detector, "untrained", False)),
        "backend": detector.backend,
        "input_size": list(detector.input_size),
        "conf_threshold": args.conf,
        "nms_threshold": args.nms,
        "max_detections": args.max_detections,
        "class_names": list(detector.class_names),
        "box_format": "xyxy source pixels",
    }
    writer = _OutputWriter(output, source, detector.class_names, args.no_annotated, restore)
    detections = _DetectionsFile(output / "detections.json", header)
    try:
        batch = []
        with tqdm(total=source.total, unit="img", desc="predict") as progress:
            for frame in source:
                batch.append(frame)
                if len(batch) == args.batch_size:
                    detections.add(_process(detector, batch, restore, writer))
                    progress.update(len(batch))
                    batch = []
            if batch:
                detections.add(_process(detector, batch, restore, writer))
                progress.update(len(batch))
    except BaseException:
        failed = True
        detections.abandon()
        raise
    else:
        failed = False
    finally:
        writer.close()
        detector.close()
        if failed and created and detections.images == 0:
            # Nothing was written (e.g. no image of the folder could be read): no empty
            # output folder is left behind, as for a run refused before it started.
            _remove_empty_folders(output)
    detections.finish(
        [{"source": str(file.path), "problem": file.problem} for file in source.skipped]
    )
    height, width = detector.input_size
    skipped = f", {len(source.skipped)} unreadable skipped" if source.skipped else ""
    print(
        f"{detections.images} images{skipped}, {detections.boxes} detections -> {output} "
        f"({detector.backend}, input {height}x{width})"
    )
    return 0


def _remove_empty_folders(root: Path) -> None:
    """Remove ``root`` and the folders under it, deepest first, as long as they are empty."""
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


class _DetectionsFile:
    """detections.json, written as the images go: ``{header..., "images": [...], "skipped"}``.

    An hour of video is some 100,000 records, gigabytes when kept to be written at the end.
    They go to ``detections.json.part``, renamed once the run is complete; a run that stops
    midway leaves the part file with every image done so far.
    """

    def __init__(self, path: Path, header: dict) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        self.images = 0
        self.boxes = 0
        self._file = self.partial.open("w", encoding="utf-8")
        # The same text as json.dumps(whole document, indent=1).
        self._file.write(json.dumps(header, indent=1).removesuffix("\n}") + ',\n "images": [')

    def add(self, records: list[dict]) -> None:
        """Append image records (and flush, so the part file keeps up with the run)."""
        for record in records:
            text = json.dumps(record, indent=1).replace("\n", "\n  ")
            self._file.write(("\n  " if self.images == 0 else ",\n  ") + text)
            self.images += 1
            self.boxes += len(record["detections"])
        self._file.flush()

    def abandon(self) -> None:
        """A failed run: the part file stays where it holds images done before the failure."""
        self._file.close()
        if self.images == 0:
            self.partial.unlink(missing_ok=True)

    def finish(self, skipped: list[dict]) -> None:
        """Complete the document and give it its name."""
        self._file.write("\n ]" if self.images else "]")
        self._file.write(',\n "skipped": ' + json.dumps(skipped, indent=1).replace("\n", "\n "))
        self._file.write("\n}")
        self._file.close()
        self.partial.replace(self.path)


def _warn_about_other_files(source: MediaSource) -> None:
    """Name the files of a folder source that are not read because they are not images.

    A video or a .heic photo dropped among the images would otherwise get no output and no word.
    """
    from togethernet_ros.inference.media import IMAGE_SUFFIXES

    if not source.path.is_dir():
        return
    others = sorted(
        path.name
        for path in source.path.iterdir()
        if path.is_file()
        and not path.name.startswith(".")  # .DS_Store and the like
        and path.suffix.lower() not in IMAGE_SUFFIXES
    )
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        LOGGER.warning(
            "%s: %d files that are not images are not read (%s); predict takes a video on its own",
            source.path,
            len(others),
            shown,
        )


def _check_sources_kept(source: MediaSource, output: Path, annotate: bool, restore: bool) -> None:
    """Refuse an --output whose image files would replace source images.

    Running on an earlier run's outputs (``--source out/dehazed --output out``) would
    otherwise overwrite every input image with its own result.
    """
    if source.kind != "images":
        return  # video outputs are <stem>_annotated.mp4 / _dehazed.mp4: never the source file
    folders = {"annotated": ".jpg"} if annotate else {}
    if restore:
        folders["dehazed"] = ".png"
    sources = {path.resolve() for path in source.files}
    for folder, suffix in folders.items():
        for path, name in zip(source.files, source.names, strict=True):
            target = output / folder / f"{name}{suffix}"
            if target.resolve() in sources:
                raise ValueError(
                    f"--output {output} would overwrite the source image {path} with its "
                    f"{folder} output; choose another --output"
                )


def _process(
    detector: Detector, frames: list[Frame], restore: bool, writer: _OutputWriter
) -> list[dict]:
    results = detector.detect([frame.image for frame in frames], restore=restore)
    records = []
    for frame, result in zip(frames, results, strict=True):
        writer.write(frame, result)
        height, width = frame.image.shape[:2]
        records.append(
            {
                "source": frame.name,
                "frame": frame.index,
                "width": width,
                "height": height,
                "detections": result.detections.to_records(detector.class_names),
            }
        )
    return records


class _OutputWriter:
    """Annotated / dehazed outputs as image files or as two videos."""

    def __init__(
        self,
        output: Path,
        source: MediaSource,
        class_names: tuple[str, ...],
        no_annotated: bool,
        restore: bool,
    ) -> None:
        from togethernet_ros.inference.media import VideoSink

        self.output = output
        self.class_names = class_names
        self.annotate = not no_annotated
        self.restore = restore
        self.video = source.kind == "video"
        self.sinks = {}
        if self.video:
            stem = source.path.stem
            if self.annotate:
                self.sinks["annotated"] = VideoSink(output / f"{stem}_annotated.mp4", source.fps)
            if restore:
                self.sinks["dehazed"] = VideoSink(output / f"{stem}_dehazed.mp4", source.fps)

    def write(self, frame: Frame, result: ImageResult) -> None:
        """Write one frame's annotated and dehazed outputs and remember its detections."""
        import cv2

        from togethernet_ros.vision.draw import draw_detections

        outputs = {}
        if self.annotate:
            outputs["annotated"] = draw_detections(frame.image, result.detections, self.class_names)
        if self.restore and result.dehazed is not None:
            outputs["dehazed"] = result.dehazed
        for kind, image in outputs.items():
            if self.video:
                self.sinks[kind].write(image)
            else:
                folder = self.output / kind
                folder.mkdir(exist_ok=True)
                # JPEG for annotations (small), PNG for dehazed images (lossless product output).
                suffix = ".jpg" if kind == "annotated" else ".png"
                if not cv2.imwrite(str(folder / f"{frame.name}{suffix}"), image):
                    raise RuntimeError(f"cannot write {folder / (frame.name + suffix)}")

    def close(self) -> None:
        """Finish every open video file."""
        for sink in self.sinks.values():
            sink.close()
