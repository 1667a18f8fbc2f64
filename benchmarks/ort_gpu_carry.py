"""Pack onnxruntime-gpu for a GPU machine that cannot reach PyPI and takes ≤ 64 MiB per call.

The CUDA provider library of the onnxruntime-gpu wheel is ~284 MB, mostly GPU code for six
architectures. For the transfer only, the cubins of every architecture but the target's are
zeroed in place (headers, sizes and offsets stay, so the library loads and picks its own
architecture's code), the package is tarred and zstd-compressed (~71 MB for sm_90), and the
archive is split into pieces that each fit beside the repository in one call. A static zstd
binary is copied along for machines without one.

    .venv/bin/python benchmarks/ort_gpu_carry.py .dev_ort --sm 90 --pieces 3
    # on the GPU machine, after every piece has arrived (gpu_session.sh, stage "ort"):
    #   cat pieces > ort.tar.zst && zstd -d -c ort.tar.zst | tar x -C /tmp/ortsite
    #   (with the carried zstd: LD_LIBRARY_PATH=part1 part1/zstd)

Used on 2026-11-26 to run ONNX Runtime's CUDA EP on an H100 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
CUDA_PROVIDER = "libonnxruntime_providers_cuda.so"


def zero_other_architectures(library: Path, keep_sm: int) -> tuple[int, int]:
    """Zero every cubin payload in the ELF `.nv_fatbin` section not built for `keep_sm`.

    Returns (bytes zeroed, bytes kept). Layout: ELF64 section headers → `.nv_fatbin` holds
    fatbin containers (magic, version, header size, payload size), each a list of entries
    (kind, flags, header size, payload size, ..., architecture at byte 28).
    """
    data = bytearray(library.read_bytes())
    section_offset = struct.unpack_from("<Q", data, 0x28)[0]
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQ", data, section_offset + i * entry_size) for i in range(count)
    ]
    names_offset = sections[names_index][4]
    fatbin = None
    for name, _type, _flags, _address, offset, size in sections:
        end = data.index(b"\0", names_offset + name)
        if bytes(data[names_offset + name : end]) == b".nv_fatbin":
            fatbin = (offset, size)
    if fatbin is None:
        raise ValueError(f"{library} has no .nv_fatbin section")
    position, limit = fatbin[0], fatbin[0] + fatbin[1]
    zeroed = kept = 0
    while position < limit:
        magic, _version, header, payload = struct.unpack_from("<IHHQ", data, position)
        if magic != FATBIN_MAGIC:
            position += 8  # containers are 8-byte aligned
            continue
        entry, end = position + header, position + header + payload
        while entry < end:
            _kind, _flags, entry_header, entry_payload = struct.unpack_from("<HHIQ", data, entry)
            architecture = struct.unpack_from("<I", data, entry + 28)[0]
            start = entry + entry_header
            if architecture == keep_sm:
                kept += entry_payload
            else:
                data[start : start + entry_payload] = bytes(entry_payload)
                zeroed += entry_payload
            entry = start + entry_payload
        position = end
    library.write_bytes(bytes(data))
    return zeroed, kept


def copy_zstd(folder: Path) -> None:
    """The zstd binary and the compression libraries it links (lz4, lzma) beside it."""
    binary = Path(shutil.which("zstd"))
    shutil.copy(binary, folder / "zstd")
    linked = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    for line in linked.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>" and ("lz4" in parts[0] or "lzma" in parts[0]):
            shutil.copy(parts[2], folder / parts[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", type=Path)
    parser.add_argument("--version", default="1.31.1", help="onnxruntime-gpu version")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--sm", type=int, default=90, help="GPU architecture to keep (90: H100)")
    parser.add_argument("--pieces", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("zstd is needed here (apt-get install zstd)")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", "--python-version", args.python_version,
                "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                "--dest", str(work), f"onnxruntime-gpu=={args.version}",
            ],
            check=True,
        )  # fmt: skip
        wheel = next(work.glob("onnxruntime_gpu-*.whl"))
        package = work / "package"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(package)
        library = next(package.glob(f"onnxruntime/capi/{CUDA_PROVIDER}"))
        zeroed, kept = zero_other_architectures(library, args.sm)
        print(
            f"{CUDA_PROVIDER}: kept {kept / 1e6:.0f} MB of sm_{args.sm} code, zeroed {zeroed / 1e6:.0f} MB"
        )
        tar_path = work / "ort.tar"
        with tarfile.open(tar_path, "w") as tar:
            for item in sorted(package.iterdir()):
                tar.add(item, arcname=item.name)
        subprocess.run(["zstd", "-19", "--long=27", "-T0", "-q", "-f", str(tar_path)], check=True)
        compressed = tar_path.with_suffix(".tar.zst").read_bytes()
    args.destination.mkdir(parents=True, exist_ok=True)
    piece_size = -(-len(compressed) // args.pieces)
    for index in range(args.pieces):
        part = args.destination / f"part{index + 1}"
        part.mkdir(exist_ok=True)
        (part / f"ort.part{index}").write_bytes(
            compressed[index * piece_size : (index + 1) * piece_size]
        )
    (args.destination / "part1" / "ort.sha256").write_text(
        hashlib.sha256(compressed).hexdigest() + "\n"
    )
    copy_zstd(args.destination / "part1")
    print(
        f"{len(compressed) / 1e6:.1f} MB in {args.pieces} pieces of ≤ {piece_size / 1e6:.1f} MB "
        f"under {args.destination}/part*; zstd copied to part1"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
