"""`togethernet data voc2yolo|split|fog`: dataset conversion, splitting and fog synthesis."""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from togethernet_ros.evaluation.atomic_write import write_files_together, write_text_atomically
from togethernet_ros.training.class_list import parse_class_names
from togethernet_ros.training.data_issues import DataError, DataIssues
from togethernet_ros.training.image_pairing import index_images
from togethernet_ros.training.voc_xml import parse_voc_xml, read_image_set
from togethernet_ros.training.yolo_labels import format_yolo_labels
from togethernet_ros.vision.fog import DepthCache, add_fog
from togethernet_ros.vision.image_file import image_file_size, read_whole_image_file

JPEG_MAX_SIDE = 65500

HELP = "Dataset tools: convert VOC to YOLO labels, make seeded splits, synthesise fog."


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voc-root", required=True, type=Path, help="VOC-format dataset root")
    parser.add_argument(
        "--classes",
        default=None,
        help="comma-separated class names or a file with one per line (default: the 5 VOC-FOG "
        "classes person,bicycle,car,motorbike,bus)",
    )
    parser.add_argument(
        "--image-set", default=None, help="ImageSets/Main/<name>.txt to use (default: all)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the `data` subcommands."""
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    voc2yolo = sub.add_parser("voc2yolo", help="convert VOC XML annotations to YOLO txt labels")
    _add_common(voc2yolo)
    voc2yolo.add_argument("--out", required=True, type=Path, help="output labels directory")
    voc2yolo.add_argument("--strict", action="store_true", help="stop at the first bad file")
    voc2yolo.add_argument(
        "--keep-difficult",
        action="store_true",
        help="also write objects marked <difficult> (default: left out, as upstream trains "
        "and as VOC scores them: YOLO labels have no flag to tell them apart)",
    )
    voc2yolo.set_defaults(_data_run=run_voc2yolo)

    split = sub.add_parser("split", help="write seeded train/val/test lists to ImageSets/Main")
    split.add_argument("--voc-root", required=True, type=Path, help="VOC-format dataset root")
    split.add_argument(
        "--ratios",
        nargs=3,
        type=float,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VAL", "TEST"),
        help="relative sizes of the three lists (default 0.8 0.1 0.1)",
    )
    split.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    split.set_defaults(_data_run=run_split)

    fog = sub.add_parser("fog", help=FOG_SUMMARY, description=FOG_HELP)
    add_fog_arguments(fog)


FOG_SUMMARY = "write a foggy copy of a clean VOC dataset (atmospheric scattering model)"
FOG_HELP = (
    "Fog every clean image: I = J·t + A·(1−t), t = exp(−β·d), d = −slope·‖p − centre‖ + "
    "√max(H, W). Default recipe: A = 0.5, β = 0.05 + 0.01·i (i = 0..9, one drawn per image), "
    "slope 0.04. Foggy files are named like their clean originals, which is the pairing the "
    "trainer reads."
)


def add_fog_arguments(fog: argparse.ArgumentParser) -> None:
    """The options of `data fog` (also `togethernet fog`)."""
    _add_common(fog)
    fog.add_argument("--clean-dir", default="JPEGImages", help="clean images under --voc-root")
    fog.add_argument("--out-dir", default="FOG", help="foggy images dir (relative to --voc-root)")
    fog.add_argument("--beta-min", type=float, default=0.05, help="lowest β (default 0.05)")
    fog.add_argument("--beta-max", type=float, default=0.14, help="highest β (default 0.14)")
    fog.add_argument(
        "--beta-step", type=float, default=0.01, help="0 = continuous uniform β (default 0.01)"
    )
    fog.add_argument(
        "--versions-per-image",
        type=int,
        default=1,
        help="foggy versions per clean image; >1 writes <id>_<beta>.jpg files",
    )
    fog.add_argument("--airlight", type=float, default=0.5, help="atmospheric light A in [0, 1]")
    fog.add_argument(
        "--airlight-jitter", type=float, default=0.0, help="A drawn from A ± jitter per image"
    )
    fog.add_argument(
        "--depth-slope", type=float, default=0.04, help="depth proxy slope (0 = uniform fog)"
    )
    fog.add_argument("--seed", type=int, default=0, help="fog draws seed (default 0)")
    fog.add_argument(
        "--jpeg-quality", type=int, default=95, help="of the foggy JPEGs, 0..100 (default 95)"
    )
    fog.set_defaults(_data_run=run_fog)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen `data` action; a bad option or strict-mode data error exits in one
    line that names it."""
    try:
        return args._data_run(args)
    except (DataError, DataOptionError) as error:
        name = "fog" if getattr(args, "command", None) == "fog" else f"data {args.data_command}"
        raise SystemExit(f"togethernet {name}: error: {error}") from error


class DataOptionError(ValueError):
    """An option of a `data` action is out of range or contradicts another."""


def _annotation_ids(voc_root: Path) -> list[str]:
    directory = voc_root / "Annotations"
    if not directory.is_dir():
        raise FileNotFoundError(f"annotation directory not found: {directory}")
    return sorted(path.stem for path in directory.glob("*.xml"))


def _image_ids(args: argparse.Namespace) -> list[str]:
    if args.image_set:
        return read_image_set(args.voc_root / "ImageSets" / "Main" / f"{args.image_set}.txt")
    return _annotation_ids(args.voc_root)


def _class_names(value: str | None) -> tuple[str, ...]:
    try:
        return parse_class_names(value)
    except ValueError as error:
        raise DataOptionError(f"--classes: {error}") from error


def run_voc2yolo(args: argparse.Namespace) -> int:
    """Convert Annotations/*.xml to YOLO txt files plus classes.txt.

    A rerun into the same folder removes the label files its image set's earlier run wrote
    and this one does not (listed in voc2yolo_labels.csv); other image sets' files stay.
    """
    class_names = _class_names(args.classes)
    issues = DataIssues(strict=args.strict)
    ids = _image_ids(args)
    if not ids:
        where = f"image set {args.image_set!r}" if args.image_set else args.voc_root / "Annotations"
        raise DataOptionError(f"no annotations to convert: {where} is empty")
    if args.out.exists() and not args.out.is_dir():
        raise DataOptionError(f"--out {args.out} is a file; give a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    earlier = _read_label_list(args.out)
    _check_same_classes(args.out, earlier, args.image_set or "", class_names)
    wanted = set(ids)
    images = _optional_index(args.voc_root / "JPEGImages", issues, wanted.__contains__)
    written: list[str] = []
    skipped: list[str] = []
    for image_id in ids:
        xml_path = args.voc_root / "Annotations" / f"{image_id}.xml"
        # YOLO labels are normalised by the image size: the image's own where it is there (a
        # <size> left out, at 0 or wrong would give wrong labels), else <size>.
        path = images.get(image_id)
        size = image_file_size(path) if path is not None else None
        annotation = parse_voc_xml(xml_path, class_names, issues, size)
        if annotation is not None and (annotation.width <= 0 or annotation.height <= 0):
            issues.report(
                xml_path,
                "no image size in <size> and no readable JPEGImages image to take it from",
                "sample skipped",
            )
            annotation = None
        if annotation is None:
            skipped.append(f"{image_id}.txt")
            continue
        if not args.keep_difficult:
            annotation = annotation.without_difficult()
        (args.out / f"{image_id}.txt").write_text(format_yolo_labels(annotation))
        written.append(f"{image_id}.txt")
    image_set = args.image_set or ""
    removed = _remove_stale_labels(args.out, earlier, image_set, written, skipped)
    listed = [row for row in earlier if row[0] != image_set]
    listed += [(image_set, name) for name in written]
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(("image_set", "file"))
    writer.writerows(listed)
    # The list of what this run wrote marks it finished; with classes.txt, both or neither.
    classes = "\n".join(class_names) + "\n"
    write_files_together(
        {
            args.out / "classes.txt": classes.encode("utf-8"),
            args.out / LABEL_LIST: table.getvalue().encode("utf-8"),
        }
    )
    print(f"wrote {len(written)} label files to {args.out}")
    if removed:
        more = f" and {len(removed) - 5} more" if len(removed) > 5 else ""
        print(
            f"removed {len(removed)} label files of an earlier run that this run did not "
            f"write: {', '.join(removed[:5])}{more}"
        )
    print(issues.summary())
    return 0


def _check_same_classes(
    out: Path, earlier: list[tuple[str, str]], image_set: str, class_names: tuple[str, ...]
) -> None:
    """Refuse other classes than those the labels of other image sets in ``out`` number by.

    classes.txt is one for the folder: rewritten with other names, it would give every label
    of the image sets this run keeps another class without a word.
    """
    kept_sets = sorted({row_set for row_set, _ in earlier if row_set != image_set})
    listed = out / "classes.txt"
    if not kept_sets or not listed.is_file():
        return
    before = tuple(
        name.strip() for name in listed.read_text(encoding="utf-8").splitlines() if name.strip()
    )
    if before != tuple(class_names):
        sets = ", ".join(repr(name) if name else "all" for name in kept_sets)
        raise DataOptionError(
            f"{out} holds labels of image sets {sets} numbered by the classes {list(before)} "
            f"of its classes.txt; --classes {list(class_names)} would renumber them: use the "
            "same classes, or another --out"
        )


# voc2yolo's record of the label files it wrote, per image set ('' = all annotations).
LABEL_LIST = "voc2yolo_labels.csv"


def _read_label_list(out: Path) -> list[tuple[str, str]]:
    """(image set, label file name) rows an earlier voc2yolo run into ``out`` recorded."""
    path = out / LABEL_LIST
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [
                (row.get("image_set") or "", row.get("file") or "")
                for row in csv.DictReader(handle)
            ]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a list written by voc2yolo ({error}); remove it") from error
    return [(image_set, name) for image_set, name in rows if name]


def _remove_stale_labels(
    out: Path,
    earlier: list[tuple[str, str]],
    image_set: str,
    written: list[str],
    skipped: list[str],
) -> list[str]:
    """Delete the label files this run replaces without writing them again; returns their names.

    Left behind, they are read as the labels of their images: an annotation removed or now
    unusable would go on training with its old boxes. Stale are the files an earlier run of
    this image set wrote (unless another image set's run did too) and those of ids this run
    skipped, where an earlier run wrote them. Files voc2yolo did not write stay.
    """
    others = {name for listed_set, name in earlier if listed_set != image_set}
    ours = {name for listed_set, name in earlier if listed_set == image_set}
    # Only recorded files: a skipped id's file that no run listed is the user's own label.
    skipped_recorded = set(skipped) & (ours | others)
    stale = ((ours - others) | skipped_recorded) - set(written)
    removed = []
    for name in sorted(stale):
        path = out / name
        if (
            path.parent == out
            and path.suffix == ".txt"
            and name != "classes.txt"
            and path.is_file()
        ):
            path.unlink()
            removed.append(name)
    return removed


def _optional_index(
    directory: Path, issues: DataIssues, wanted: Callable[[str], bool]
) -> dict[str, Path]:
    return index_images(directory, issues, wanted) if directory.is_dir() else {}


def split_ids(
    ids: list[str], ratios: tuple[float, float, float], seed: int
) -> dict[str, list[str]]:
    """Shuffle ``ids`` with ``seed`` and cut them into train/val/test by ``ratios``."""
    if not all(np.isfinite(ratios)) or any(ratio < 0 for ratio in ratios) or sum(ratios) <= 0:
        raise ValueError(
            f"split ratios must be finite, non-negative and not all 0, got {tuple(ratios)}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    total = sum(ratios)
    # Largest remainders: the counts add up to every image and a ratio of 0 gets none
    # (rounding each on its own gave 0.9/0.1/0 of 5 images as 4/0/1).
    exact = [len(ids) * ratio / total for ratio in ratios]
    counts = [int(np.floor(share)) for share in exact]
    # Equal remainders favour the smaller split: 0.9/0.1 of 5 is 4/1, not 5/0.
    by_remainder = sorted(range(3), key=lambda i: (counts[i] - exact[i], exact[i], i))
    for index in by_remainder[: len(ids) - sum(counts)]:
        counts[index] += 1
    n_train, n_val = counts[0], counts[1]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def run_split(args: argparse.Namespace) -> int:
    """Write ImageSets/Main/{train,val,test}.txt from the annotation files present."""
    ids = _annotation_ids(args.voc_root)
    if not ids:
        raise DataOptionError(f"no annotation files in {args.voc_root / 'Annotations'}")
    try:
        subsets = split_ids(ids, tuple(args.ratios), args.seed)
    except ValueError as error:
        raise DataOptionError(f"--ratios: {error}") from error
    out = args.voc_root / "ImageSets" / "Main"
    files = {
        out / f"{name}.txt": "".join(f"{image_id}\n" for image_id in subset).encode("utf-8")
        for name, subset in subsets.items()
    }
    try:
        # All three or none: lists of two different splits would share images between train
        # and val (or test), and the scores would silently measure memorised images.
        write_files_together(files)
    except OSError as error:
        raise DataError(f"cannot write the image-set lists in {out}: {error}") from error
    for (name, subset), ratio in zip(subsets.items(), args.ratios, strict=True):
        # A small dataset can round a wanted subset down to nothing; training or evaluating
        # on it later would fail far from the cause.
        empty = (
            " (warning: empty although its ratio is above 0)" if ratio > 0 and not subset else ""
        )
        print(f"{name}: {len(subset)} images{empty}")
    return 0


def fog_betas(beta_min: float, beta_max: float, beta_step: float) -> np.ndarray | None:
    """The discrete β choices (None when β is continuous)."""
    if not (np.isfinite(beta_min) and np.isfinite(beta_max)) or not 0 <= beta_min <= beta_max:
        raise ValueError(f"need 0 <= beta-min <= beta-max, got {beta_min}, {beta_max}")
    if beta_step <= 0:
        return None
    count = int(np.floor((beta_max - beta_min) / beta_step + 1e-6)) + 1
    return np.round(beta_min + beta_step * np.arange(count), 6)


def _check_fog_options(args: argparse.Namespace) -> None:
    """Refuse fog settings outside their meaning instead of clipping or ignoring them."""
    if not 0.0 <= args.airlight <= 1.0:
        raise DataOptionError(f"--airlight must be in [0, 1], got {args.airlight}")
    if not 0.0 <= args.airlight_jitter <= 1.0:
        raise DataOptionError(f"--airlight-jitter must be in [0, 1], got {args.airlight_jitter}")
    if not np.isfinite(args.depth_slope):
        raise DataOptionError(f"--depth-slope must be a finite number, got {args.depth_slope}")
    if not np.isfinite(args.beta_step) or args.beta_step < 0:
        raise DataOptionError(f"--beta-step must be >= 0, got {args.beta_step}")
    if args.versions_per_image < 1:
        raise DataOptionError(f"--versions-per-image must be >= 1, got {args.versions_per_image}")
    if not 0 <= args.jpeg_quality <= 100:
        raise DataOptionError(f"--jpeg-quality must be in 0..100, got {args.jpeg_quality}")


FOG_PARAMS = "fog_params.csv"
# Rows of a run under way, one per image written, so a run that stops midway leaves a list of
# what it wrote for the next run to remove.
FOG_PARAMS_PART = FOG_PARAMS + ".part"
FOG_COLUMNS = ("image_id", "file", "beta", "airlight")


def _read_fog_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a fog_params list; DataError naming the file if it cannot be read."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(
            f"{path} cannot be read ({error}); remove it and the foggy images it lists"
        ) from error


def _remove_earlier_fog_run(out_dir: Path, image_ids: set[str]) -> list[dict[str, str]]:
    """Delete the earlier versions of the images about to be fogged; return the other rows.

    Left in place, a first run's ``<id>.jpg`` sits next to a second run's ``<id>_<beta>.jpg``
    and the trainer, which pairs the exact name first, never sees the new versions. Only the
    files the lists name go (a finished run's ``fog_params.csv`` and an interrupted run's
    ``.part``), and only those of ``image_ids``: another image set's versions stay, and so
    do their rows, returned for the new list. Until the new list is written at the end, the
    folder is marked unfinished by having none.
    """
    rows = []
    for listing in (out_dir / FOG_PARAMS, out_dir / FOG_PARAMS_PART):
        if listing.is_file():
            rows += _read_fog_rows(listing)
    kept: dict[str, dict[str, str]] = {}  # by file: both lists may name one
    for row in rows:
        name = row.get("file") or ""
        if row.get("image_id") not in image_ids:
            kept.setdefault(name, row)
            continue
        path = out_dir / name
        if name and path.parent == out_dir and path.suffix.lower() in (".jpg", ".png"):
            path.unlink(missing_ok=True)
    (out_dir / FOG_PARAMS).unlink(missing_ok=True)
    # The rows kept go into the in-progress list first: a stop before the end keeps them.
    with (out_dir / FOG_PARAMS_PART).open("w", newline="", encoding="utf-8") as handle:
        _write_fog_table(handle, list(kept.values()))
    return list(kept.values())


def run_fog(args: argparse.Namespace) -> int:
    """Fog every clean image; writes images plus fog_params.csv (id, file, β, A)."""
    _check_fog_options(args)
    try:
        betas = fog_betas(args.beta_min, args.beta_max, args.beta_step)
    except ValueError as error:
        raise DataOptionError(str(error)) from error
    distinct = _distinct_beta_names(args.beta_min, args.beta_max, betas)
    if args.versions_per_image > distinct:
        # Versions are named <id>_<beta>: two of one image with the same β would be one file.
        raise DataOptionError(
            f"--versions-per-image {args.versions_per_image} needs as many distinct fog "
            f"densities, the recipe gives {distinct} fog densities "
            f"as named in the files ({_beta_names_example(args.beta_min, args.beta_max, betas)}); "
            "widen --beta-min/--beta-max, lower --beta-step, or use --beta-step 0 (continuous β)"
        )
    clean_dir = args.voc_root / args.clean_dir
    issues = DataIssues()
    listed = _image_ids(args) if args.image_set else None
    clean_index = index_images(
        clean_dir, issues, None if listed is None else set(listed).__contains__
    )
    out_dir = args.voc_root / args.out_dir
    if out_dir.resolve() == clean_dir.resolve():
        # Foggy files take their clean originals' names: writing them there replaces the originals.
        raise DataOptionError(
            f"--out-dir {args.out_dir} is the clean image directory {clean_dir}; "
            "the foggy images would overwrite the clean originals"
        )
    ids = listed if listed is not None else sorted(clean_index)
    if not ids:
        where = f"image set {args.image_set!r}" if args.image_set else clean_dir
        raise DataOptionError(f"no images to fog: {where} is empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _remove_earlier_fog_run(out_dir, set(ids))
    kept_rows = len(rows)
    part = (out_dir / FOG_PARAMS_PART).open("a", newline="", encoding="utf-8")
    try:
        written = _fog_images(args, ids, clean_index, clean_dir, out_dir, betas, issues, part)
    finally:
        part.close()
    rows += written.rows
    # Written whole or not at all: it marks a finished run, and the next run deletes what it
    # lists; the in-progress list then goes.
    table = io.StringIO(newline="")
    _write_fog_table(table, rows)
    write_text_atomically(out_dir / FOG_PARAMS, table.getvalue())
    (out_dir / FOG_PARAMS_PART).unlink(missing_ok=True)
    other = f" (the {kept_rows} of other images kept)" if kept_rows else ""
    print(
        f"wrote {len(written.rows)} foggy images to {out_dir}{other}"
        + (
            f" ({written.skipped} clean images missing or unreadable, skipped)"
            if written.skipped
            else ""
        )
    )
    print(issues.summary())
    return 0


class _FogRun(NamedTuple):
    rows: list[dict[str, str]]
    skipped: int


def _write_fog_table(handle: Any, rows: list[dict[str, str]]) -> None:
    writer = csv.DictWriter(handle, FOG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def _fog_images(
    args: argparse.Namespace,
    ids: list[str],
    clean_index: dict[str, Path],
    clean_dir: Path,
    out_dir: Path,
    betas: np.ndarray | None,
    issues: DataIssues,
    part: Any,
) -> _FogRun:
    """Fog each image of ``ids``; each file written is listed in ``part`` at once."""
    part_writer = csv.DictWriter(part, FOG_COLUMNS)
    rng = np.random.default_rng(args.seed)
    rows = []
    skipped = 0
    depths = DepthCache(args.depth_slope)
    sizes_seen: set[tuple[int, int]] = set()
    for image_id in ids:
        path = clean_index.get(image_id)
        image, problem = read_whole_image_file(path) if path is not None else (None, "missing")
        if image is None:
            # A truncated JPEG, too: fogged, its grey missing rows would pass for real fog.
            issues.report(path or clean_dir / image_id, f"clean image {problem}", "image skipped")
            skipped += 1
            continue
        size = image.shape[:2]
        depth = depths.get(*size)
        if size not in sizes_seen:
            sizes_seen.add(size)
            if args.depth_slope > 0 and not depth.all():
                # depth_proxy stops at 0 where the recipe's depth would go negative (images
                # much larger than VOC's): those corners get no fog at all.
                print(
                    f"note: {size[1]}x{size[0]} images: the depth proxy (slope "
                    f"{args.depth_slope}) reaches 0 towards the corners; fog there is set to "
                    "none (use a smaller --depth-slope for fog across the whole image)"
                )
        names: set[str] = set()
        for _ in range(args.versions_per_image):
            for _attempt in range(1000):
                # Each version of an image is its own file, <id>_<beta>: draw again on a β
                # (as written in the name) that an earlier version of this image already has.
                if betas is None:
                    beta = float(rng.uniform(args.beta_min, args.beta_max))
                else:
                    beta = float(rng.choice(betas))
                name = image_id if args.versions_per_image == 1 else f"{image_id}_{_beta_tag(beta)}"
                if name not in names:
                    break
            else:  # a continuous range too narrow for distinct names (e.g. min = max)
                raise DataOptionError(
                    f"--versions-per-image {args.versions_per_image}: the β range "
                    f"{args.beta_min}..{args.beta_max} gives too few distinct fog densities"
                )
            names.add(name)
            airlight = float(
                np.clip(args.airlight + rng.uniform(-1, 1) * args.airlight_jitter, 0, 1)
            )
            foggy = add_fog(image, beta, airlight, depth)
            # libjpeg stores at most 65500 px a side (cv2.imwrite then returns False): such a
            # panorama is written as PNG; the pairing goes by file stem.
            suffix = ".jpg" if max(size) <= JPEG_MAX_SIDE else ".png"
            target = out_dir / f"{name}{suffix}"
            row = {
                "image_id": image_id,
                "file": target.name,
                "beta": f"{beta:.6g}",
                "airlight": f"{airlight:.6g}",
            }
            # Listed before it is written: a stop between the two leaves at most a listed
            # file that does not exist, never a file nobody lists.
            part_writer.writerow(row)
            part.flush()
            if not cv2.imwrite(str(target), foggy, [cv2.IMWRITE_JPEG_QUALITY, args.jpeg_quality]):
                raise DataError(f"cannot write {target}")
            rows.append(row)
    return _FogRun(rows, skipped)


def _distinct_beta_names(beta_min: float, beta_max: float, betas: np.ndarray | None) -> int:
    """How many different ``<id>_<beta>`` names the recipe's fog densities can give."""
    if betas is None:
        # Continuous: sampled finely enough to meet every 4-digit name in a narrow range.
        betas = np.linspace(beta_min, beta_max, 100_000)
    return len({_beta_tag(float(beta)) for beta in betas})


def _beta_names_example(beta_min: float, beta_max: float, betas: np.ndarray | None) -> str:
    values = betas if betas is not None else np.linspace(beta_min, beta_max, 100_000)
    names = sorted({_beta_tag(float(beta)) for beta in values}, key=float)
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


def _beta_tag(beta: float) -> str:
    """β in a foggy version's name: 4 significant digits, never in exponent notation.

    ``f"{5e-05:.4g}"`` is ``5e-05``, which the ``<id>_<beta>`` pairing does not read as a β:
    that version would be paired with no clean original and no annotation.
    """
    return np.format_float_positional(beta, precision=4, unique=False, fractional=False, trim="-")
