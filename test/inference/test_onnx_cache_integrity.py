"""ONNX exports and caches never serve a model other than the weights they claim (real files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
import torch

from togethernet_ros.inference.export import export_variants, onnx_variant_paths
from togethernet_ros.inference.factory import create_detector
from togethernet_ros.inference.onnx_detector import OnnxRuntimeDetector
from togethernet_ros.inference.onnx_providers import engine_cache_dir
from togethernet_ros.model import (
    CheckpointError,
    TogetherNetConfig,
    build_model,
    save_checkpoint,
)
from togethernet_ros.model.file_digest import sha256_of

SIZE = (128, 128)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two checkpoints: five VOC classes, and two other classes."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(3)
    five = save_checkpoint(
        folder / "five.pt", build_model(), ["person", "bicycle", "car", "motorbike", "bus"]
    )
    two = save_checkpoint(
        folder / "two.pt", build_model(config=TogetherNetConfig(num_classes=2)), ["cat", "dog"]
    )
    return five, two


def _onnx(weights: Path, cache: Path, **options: object) -> OnnxRuntimeDetector:
    return create_detector(
        weights, backend="onnxruntime", input_size=SIZE, cache_dir=cache, num_threads=2, **options
    )


def test_half_written_cached_export_is_replaced(weights: tuple[Path, Path], tmp_path: Path) -> None:
    five, _ = weights
    detector = _onnx(five, tmp_path)
    cached = detector.files[True].path
    detector.close()
    whole = cached.read_bytes()
    # What an interrupted run (or a reader racing a concurrent exporter) left behind.
    cached.write_bytes(whole[: len(whole) // 2])
    detector = _onnx(five, tmp_path)  # was: "... is not a readable ONNX model", at every run
    assert detector.files[True].path == cached
    assert detector.class_names == ("person", "bicycle", "car", "motorbike", "bus")
    detector.close()
    assert cached.stat().st_size == len(whole)
    assert not [p for p in cached.parent.iterdir() if p.suffix == ".tmp"]


def test_onnx_path_exported_from_weights_that_changed_since_is_refused(
    weights: tuple[Path, Path], tmp_path: Path
) -> None:
    five, two = weights
    mine = tmp_path / "mine.pt"
    shutil.copy(five, mine)
    onnx_path = tmp_path / "mine.onnx"
    _onnx(mine, tmp_path, onnx_path=onnx_path).close()  # exported there on first use
    shutil.copy(two, mine)  # retrained: same path, other content and classes
    with pytest.raises(ValueError, match="exported from other weights") as caught:
        _onnx(mine, tmp_path, onnx_path=onnx_path)  # was: ran the old export as "mine.pt"
    assert "mine.onnx" in str(caught.value) and str(mine) in str(caught.value)
    detector = _onnx(None, tmp_path, onnx_path=onnx_path)  # the file alone still runs
    assert len(detector.class_names) == 5
    detector.close()


def test_onnx_file_with_other_classes_than_the_weights_is_refused(
    weights: tuple[Path, Path], tmp_path: Path
) -> None:
    five, _ = weights
    # As `togethernet export` writes it: no weights hash recorded, so classes decide.
    onnx_path = tmp_path / "cats.onnx"
    model = build_model(config=TogetherNetConfig(num_classes=2))
    export_variants(model, onnx_path, SIZE, class_names=["cat", "dog"], variants=("detect",))
    with pytest.raises(ValueError, match=r"has classes \['cat', 'dog'\] but .*five\.pt"):
        _onnx(five, tmp_path, onnx_path=onnx_path)


def test_weights_folder_is_reported_as_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a file"):  # was "checkpoint file not found"
        _onnx(tmp_path, tmp_path)


def test_unwritable_cache_is_named_in_one_line(weights: tuple[Path, Path], tmp_path: Path) -> None:
    five, _ = weights
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError, match=r"cannot write the ONNX export .*--cache-dir"):
        _onnx(five, blocker / "cache")


def test_session_failure_says_why(tmp_path: Path) -> None:
    onnx_path = tmp_path / "broken.onnx"
    export_variants(
        build_model(), onnx_path, SIZE, class_names=["a", "b", "c", "d", "e"], variants=("detect",)
    )
    _, detect_path = onnx_variant_paths(onnx_path)
    proto = onnx.load(str(detect_path))
    proto.graph.node[0].op_type = "NoSuchOperator"
    onnx.save(proto, str(detect_path))
    with pytest.raises(RuntimeError, match="NoSuchOperator"):  # was only "could not create"
        OnnxRuntimeDetector(onnx_path, num_threads=1)


def test_malformed_togethernet_metadata_names_the_file(tmp_path: Path) -> None:
    onnx_path = tmp_path / "meta.onnx"
    export_variants(
        build_model(), onnx_path, SIZE, class_names=["a", "b", "c", "d", "e"], variants=("detect",)
    )
    _, detect_path = onnx_variant_paths(onnx_path)
    proto = onnx.load(str(detect_path))
    for entry in proto.metadata_props:
        if entry.key == "togethernet.class_names":
            entry.value = "[1, 2"
    onnx.save(proto, str(detect_path))
    with pytest.raises(ValueError, match=r"meta\.detect\.onnx has broken togethernet metadata"):
        OnnxRuntimeDetector(onnx_path, num_threads=1)


def test_tensorrt_engine_cache_is_keyed_by_file_content(tmp_path: Path) -> None:
    # ONNX Runtime names engines by graph structure and file name, not weights: a file
    # re-exported from other weights under the same name must not find the old engine.
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights A")
    first = engine_cache_dir(tmp_path, model)
    assert engine_cache_dir(tmp_path, model) == first
    model.write_bytes(b"weights B")
    second = engine_cache_dir(tmp_path, model)
    assert second != first and second.parent == first.parent == tmp_path / "tensorrt"
    assert second.is_dir()
    # One engine per batch profile and precision: a batch-1 predict and a batch-4 node.
    batch_4 = engine_cache_dir(tmp_path, model, "b4_fp16")
    assert batch_4 == second.with_name(f"{second.name}_b4_fp16")
    assert engine_cache_dir(tmp_path, model, "b1_fp16") != batch_4


def test_an_export_interrupted_between_its_two_files_leaves_neither(
    weights: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    five, _ = weights
    onnx_path = tmp_path / "node.onnx"
    real_export = torch.onnx.export
    calls = []

    def interrupted_second_export(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C / SIGTERM while the detection-only file is exported
            raise KeyboardInterrupt
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", interrupted_second_export)
    with pytest.raises(KeyboardInterrupt):
        _onnx(five, tmp_path, onnx_path=onnx_path)  # exported there on first use
    # Was: node.onnx stayed alone, and every later start took it for the export (its
    # detection-only file never made: each frame ran the restoration decoder too).
    assert not [path for path in onnx_variant_paths(onnx_path) if path.exists()]
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    detector = _onnx(five, tmp_path, onnx_path=onnx_path)
    assert set(detector.files) == {True, False}
    detector.close()


def test_a_full_disk_leaves_no_torn_export_in_the_cache(
    weights: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from togethernet_ros.evaluation import atomic_write

    five, _ = weights

    class FullDisk:
        """A file that takes some bytes and then fails as a full disk does (ENOSPC)."""

        def __init__(self, path: str, mode: str) -> None:
            self.file = open(path, mode)  # noqa: SIM115

        def write(self, data: bytes) -> int:
            self.file.write(data[: len(data) // 3])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc_info: object) -> None:
            self.file.close()

    monkeypatch.setattr(atomic_write, "open", FullDisk, raising=False)
    with pytest.raises(RuntimeError, match=r"cannot write the ONNX export .*No space left"):
        _onnx(five, tmp_path)
    leftovers = [path.name for path in (tmp_path / "onnx").iterdir()]
    assert leftovers == []  # nothing torn under a final name, no temporary file either
    monkeypatch.undo()
    detector = _onnx(five, tmp_path)
    assert set(detector.files) == {True, False}
    detector.close()


def test_an_older_versions_cached_export_is_replaced_with_a_log_line(
    weights: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    five, _ = weights
    detector = _onnx(five, tmp_path)
    cached = detector.files[True].path
    detector.close()
    # As an older version wrote it: no weights hash in the metadata.
    for path in onnx_variant_paths(cached):
        proto = onnx.load(str(path))
        kept = [e for e in proto.metadata_props if e.key != "togethernet.weights_sha256"]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        onnx.save(proto, str(path))
    with caplog.at_level("WARNING", logger="togethernet_ros"):
        detector = _onnx(five, tmp_path)
    assert "replacing the cached ONNX export" in caplog.text
    assert "does not record the content hash" in caplog.text
    assert detector.files[False].metadata["weights_sha256"]
    detector.close()


def test_temporary_files_of_killed_exports_do_not_pile_up(
    weights: tuple[Path, Path], tmp_path: Path
) -> None:
    import subprocess

    five, _ = weights
    folder = tmp_path / "onnx"
    folder.mkdir()
    ended = subprocess.Popen(["true"])
    ended.wait()  # a pid that no process has any more: an exporter killed mid-write
    name = f"five-{sha256_of(five)[:16]}_128x128"
    dead = [
        folder / f".{name}{suffix}.{ended.pid}.0badf00d.tmp" for suffix in (".onnx", ".detect.onnx")
    ]
    live = folder / f".{name}.onnx.1.0badf00d.tmp"  # pid 1: alive (another export under way)
    for path in [*dead, live]:
        path.write_bytes(b"half a model")
    detector = _onnx(five, tmp_path)
    detector.close()
    # Was: every killed export's whole-model temporaries stayed in the cache for good.
    assert not [path for path in dead if path.exists()]
    assert live.exists()
