"""`demo-data`: foggy two-camera bags from a real video (vtest.avi via apt) or a given one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.demo_data import FRONT_TOPIC, SIDE_TOPIC, build_demo_bag, side_view
from togethernet_ros.bag.sample_video import SampleVideoError, fetch_sample_video
from togethernet_ros.cli import main


def _write_video(path, frames: int = 6):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (160, 120))
    for index in range(frames):
        image = np.zeros((120, 160, 3), np.uint8)
        image[:, : 40 + 10 * index] = (30, 60, 220)
        writer.write(image)
    writer.release()
    return path


def _contrast(image: np.ndarray) -> float:
    return float(image.astype(np.float32).std())


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_demo_bag_from_a_given_video(tmp_path, storage):
    video = _write_video(tmp_path / "clip.avi")
    result = build_demo_bag(video, tmp_path / "bag", storage=storage, max_frames=10, fps=20)
    assert result.frames == 6 and result.fps == 20
    assert result.betas[0] == 0 and result.betas[-1] == pytest.approx(0.15)
    with BagReader(tmp_path / "bag") as reader:
        assert reader.storage == storage
        frames = list(reader.frames())
    front = [f for f in frames if f.topic == FRONT_TOPIC]
    side = [f for f in frames if f.topic == SIDE_TOPIC]
    assert len(front) == len(side) == 6
    assert front[1].stamp_ns - front[0].stamp_ns == 50_000_000
    assert side[0].stamp_ns - front[0].stamp_ns == 7_000_000
    assert front[0].image.shape == (120, 160, 3) and side[0].image.shape == (120, 120, 3)
    # Clear first frame: the red band is intact; fog lowers contrast frame by frame.
    # (MJPG is lossy, hence the tolerance.)
    assert np.abs(front[0].image[60, 5].astype(int) - (30, 60, 220)).max() <= 4
    contrasts = [_contrast(f.image) for f in front]
    assert contrasts[-1] < 0.8 * contrasts[0]


def test_side_view_is_a_mirrored_crop():
    frame = np.arange(4 * 8 * 3, dtype=np.uint8).reshape(4, 8, 3)
    view = side_view(frame)
    assert view.shape == (4, 6, 3)
    np.testing.assert_array_equal(view[:, 0], frame[:, 7])  # mirrored, colours untouched


def test_demo_data_cli_on_the_real_sample_video(tmp_path, capsys):
    try:
        video = fetch_sample_video()
    except SampleVideoError as error:
        pytest.skip(f"opencv-doc's vtest.avi cannot be fetched here: {error}")
    output = tmp_path / "sample"
    assert (
        main(["demo-data", "--output", str(output), "--max-frames", "3", "--video", str(video)])
        == 0
    )
    assert "768x576" in capsys.readouterr().out
    with BagReader(output) as reader:
        assert reader.image_topics == [FRONT_TOPIC, SIDE_TOPIC]
        assert reader.image_message_count == 6


def test_demo_data_cli_refuses_bad_input_with_status_2_and_leaves_no_bag(tmp_path, capsys):
    output = tmp_path / "b"
    not_a_video = tmp_path / "notes.jpg"
    not_a_video.write_bytes(b"not a picture nor a video")
    video = _write_video(tmp_path / "clip.avi")
    folder = tmp_path / "clips"
    folder.mkdir()
    for arguments, message in [
        (["--video", str(tmp_path / "none.avi")], "does not exist"),
        (["--video", str(folder)], "is a folder, not a video file"),
        (["--video", str(not_a_video)], "has no readable frames"),
    ]:
        assert main(["demo-data", *arguments, "--output", str(output)]) == 2
        assert message in capsys.readouterr().err
        assert not output.exists()
    for option, value in [("--max-frames", "0"), ("--fps", "-1"), ("--max-beta", "-0.5")]:
        with pytest.raises(SystemExit) as stop:
            main(["demo-data", "--video", str(video), "--output", str(output), option, value])
        assert stop.value.code == 2
        assert f"argument {option}: must be" in capsys.readouterr().err
        assert not output.exists()


def test_demo_data_never_overwrites_its_video(tmp_path, capsys):
    video = _write_video(tmp_path / "clip.avi")
    before = video.read_bytes()
    # --overwrite removes the output path first; the video was deleted and replaced by a bag.
    for output in (video, tmp_path):
        command = ["demo-data", "--video", str(video), "--output", str(output), "--overwrite"]
        assert main([*command, "--max-frames", "2"]) == 2
        assert f"--output {output} would replace the video {video}" in capsys.readouterr().err
    assert video.is_file() and video.read_bytes() == before


def test_two_demos_fetching_the_sample_video_at_once(tmp_path, monkeypatch):
    import os
    import shutil
    import stat
    import subprocess
    import threading

    from togethernet_ros.bag import sample_video

    # A stand-in opencv-doc .deb holding the one member we extract, and a stand-in `apt-get`
    # that hands it out once two downloads are under way (two demos started together).
    root = tmp_path / "package"
    member = root / sample_video.MEMBER.removeprefix("./")
    member.parent.mkdir(parents=True)
    video = b"RIFF vtest" * 100_000
    member.write_bytes(video)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        "Package: opencv-doc\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: stand-in\n"
    )
    deb = tmp_path / "opencv-doc_1.0_all.deb"
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    subprocess.run(["dpkg-deb", "--build", str(root), str(deb)], check=True, capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(
        "#!/bin/sh\n"
        f'touch "{arrivals}/$$"\n'
        "i=0\n"
        f'while [ "$(ls "{arrivals}" | wc -l)" -lt 2 ] && [ $i -lt 100 ]; do '
        "sleep 0.05; i=$((i+1)); done\n"
        f'cp "{deb}" ./\n'
    )
    apt_get.chmod(apt_get.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    cache = tmp_path / "cache"
    ended = subprocess.Popen(["true"])
    ended.wait()
    killed = cache / f".fetch-{ended.pid}-x1y2"  # a fetch killed with its .deb (~96 MB)
    killed.mkdir(parents=True)
    shutil.copy(deb, killed)
    outcomes: dict[int, object] = {}

    def fetch(index: int) -> None:
        try:
            outcomes[index] = sample_video.fetch_sample_video(cache)
        except Exception as error:  # the outcome is what the test checks
            outcomes[index] = error

    threads = [threading.Thread(target=fetch, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Was: one of them failed (its .deb deleted by the other, or the shared vtest.avi.part
    # renamed away under it: FileNotFoundError).
    assert outcomes == {0: cache / "vtest.avi", 1: cache / "vtest.avi"}
    assert (cache / "vtest.avi").read_bytes() == video
    assert [path.name for path in cache.iterdir()] == ["vtest.avi"]  # nor the killed one's
