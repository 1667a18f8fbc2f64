"""`togethernet data voc2yolo|split|fog`: dataset conversion, splitting and fog synthesis."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from togethernet_ros.model.config import DEFAULT_CLASS_NAMES
from togethernet_ros.training.data_issues import DataIssues
from togethernet_ros.training.image_pairing import index_images
from togethernet_ros.training.voc_xml import parse_voc_xml, read_image_set
from togethernet_ros.training.yolo_labels import format_yolo_labels
from togethernet_ros.vision.fog import add_fog, depth_proxy

HELP = "Dataset tools: convert VOC to YOLO labels, make seeded splits, synthesise fog."


def parse_class_names(value: str | None) -> tuple[str, ...]:
    """Class list from a comma-separated string or a file with one name per line."""
    if not value:
        return DEFAULT_CLASS_NAMES
    path = Path(value)
    names = path.read_text().split() if path.is_file() else value.split(",")
    names = tuple(name.strip() for name in names if name.strip())
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate class names in {value!r}")
    return names


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
    voc2yolo.set_defaults(_data_run=run_voc2yolo)

    split = sub.add_parser("split", help="write seeded train/val/test lists to ImageSets/Main")
    split.add_argument("--voc-root", required=True, type=Path, help="VOC-format dataset root")
    split.add_argument(
        "--ratios", nargs=3, type=float, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST")
    )
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(_data_run=run_split)

    fog = sub.add_parser(
        "fog",
        help="write a foggy copy of a clean VOC dataset (atmospheric scattering model)",
        description="Fog every clean image: I = J·t + A·(1−t), t = exp(−β·d), "
        "d = −slope·‖p − centre‖ + √max(H, W). Default recipe: A = 0.5, β = 0.05 + 0.01·i "
        "(i = 0..9, one drawn per image), slope 0.04. Foggy files are named like their clean "
        "originals, which is the pairing the trainer reads.",
    )
    _add_common(fog)
    fog.add_argument("--clean-dir", default="JPEGImages", help="clean images under --voc-root")
    fog.add_argument("--out-dir", default="FOG", help="foggy images dir (relative to --voc-root)")
    fog.add_argument("--beta-min", type=float, default=0.05)
    fog.add_argument("--beta-max", type=float, default=0.14)
    fog.add_argument("--beta-step", type=float, default=0.01, help="0 = continuous uniform β")
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
    fog.add_argument("--seed", type=int, default=0)
    fog.add_argument("--jpeg-quality", type=int, default=95)
    fog.set_defaults(_data_run=run_fog)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen `data` action."""
    return args._data_run(args)


def _image_ids(args: argparse.Namespace) -> list[str]:
    if args.image_set:
        return read_image_set(args.voc_root / "ImageSets" / "Main" / f"{args.image_set}.txt")
    return sorted(path.stem for path in (args.voc_root / "Annotations").glob("*.xml"))


def run_voc2yolo(args: argparse.Namespace) -> int:
    """Convert Annotations/*.xml to YOLO txt files plus classes.txt."""
    class_names = parse_class_names(args.classes)
    issues = DataIssues(strict=args.strict)
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for image_id in _image_ids(args):
        annotation = parse_voc_xml(
            args.voc_root / "Annotations" / f"{image_id}.xml", class_names, issues
        )
        if annotation is None:
            continue
        (args.out / f"{image_id}.txt").write_text(format_yolo_labels(annotation))
        written += 1
    (args.out / "classes.txt").write_text("\n".join(class_names) + "\n")
    print(f"wrote {written} label files to {args.out}")
    print(issues.summary())
    return 0


def split_ids(
    ids: list[str], ratios: tuple[float, float, float], seed: int
) -> dict[str, list[str]]:
    """Shuffle ``ids`` with ``seed`` and cut them into train/val/test by ``ratios``."""
    if any(ratio < 0 for ratio in ratios) or sum(ratios) <= 0:
        raise ValueError(f"split ratios must be non-negative with a positive sum, got {ratios}")
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    total = sum(ratios)
    n_train = round(len(ids) * ratios[0] / total)
    n_val = round(len(ids) * ratios[1] / total)
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def run_split(args: argparse.Namespace) -> int:
    """Write ImageSets/Main/{train,val,test}.txt from the annotation files present."""
    ids = sorted(path.stem for path in (args.voc_root / "Annotations").glob("*.xml"))
    if not ids:
        raise SystemExit(f"no annotation files in {args.voc_root / 'Annotations'}")
    out = args.voc_root / "ImageSets" / "Main"
    out.mkdir(parents=True, exist_ok=True)
    for name, subset in split_ids(ids, tuple(args.ratios), args.seed).items():
        (out / f"{name}.txt").write_text("".join(f"{image_id}\n" for image_id in subset))
        print(f"{name}: {len(subset)} images")
    return 0


def fog_betas(beta_min: float, beta_max: float, beta_step: float) -> np.ndarray | None:
    """The discrete β choices (None when β is continuous)."""
    if beta_max < beta_min or beta_min < 0:
        raise ValueError(f"need 0 <= beta-min <= beta-max, got {beta_min}, {beta_max}")
    if beta_step <= 0:
        return None
    count = int(np.floor((beta_max - beta_min) / beta_step + 1e-6)) + 1
    return np.round(beta_min + beta_step * np.arange(count), 6)


def run_fog(args: argparse.Namespace) -> int:
    """Fog every clean image; writes images plus fog_params.csv (id, file, β, A)."""
    clean_index = index_images(args.voc_root / args.clean_dir)
    out_dir = args.voc_root / args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    betas = fog_betas(args.beta_min, args.beta_max, args.beta_step)
    rng = np.random.default_rng(args.seed)
    ids = _image_ids(args) if args.image_set else sorted(clean_index)
    rows = []
    depth_cache: dict[tuple[int, int], np.ndarray] = {}
    for image_id in ids:
        path = clean_index.get(image_id)
        image = cv2.imread(str(path)) if path is not None else None
        if image is None:
            print(
                f"warning: {args.voc_root / args.clean_dir / image_id}: "
                "missing or unreadable, skipped"
            )
            continue
        size = image.shape[:2]
        if size not in depth_cache:
            depth_cache[size] = depth_proxy(*size, slope=args.depth_slope)
        for _ in range(args.versions_per_image):
            if betas is None:
                beta = float(rng.uniform(args.beta_min, args.beta_max))
            else:
                beta = float(rng.choice(betas))
            airlight = float(
                np.clip(args.airlight + rng.uniform(-1, 1) * args.airlight_jitter, 0, 1)
            )
            foggy = add_fog(image, beta, airlight, depth_cache[size])
            name = image_id if args.versions_per_image == 1 else f"{image_id}_{beta:.4g}"
            target = out_dir / f"{name}.jpg"
            cv2.imwrite(str(target), foggy, [cv2.IMWRITE_JPEG_QUALITY, args.jpeg_quality])
            rows.append((image_id, target.name, f"{beta:.6g}", f"{airlight:.6g}"))
    with (out_dir / "fog_params.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("image_id", "file", "beta", "airlight"))
        writer.writerows(rows)
    print(f"wrote {len(rows)} foggy images to {out_dir}")
    return 0
