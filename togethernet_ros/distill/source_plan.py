"""The frame sources of a distillation run: videos, image folders and rosbag2 camera topics.

Checked before labelling starts (a missing path, an unreadable bag, a `--topic` a bag lacks are
one error line), named so that no two sources share a name (their frames would overwrite each
other's image files), then read one after another, one frame at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from togethernet_ros.distill.bag_frames import (
    BagCameras,
    BagFramesReport,
    bag_file_error,
    choose_cameras,
    is_bag_source,
    iter_bag_frames,
)
from togethernet_ros.distill.frame_sources import (
    SourceFrame,
    iter_source_frames,
    source_name,
    unique_names,
)


@dataclass(frozen=True)
class PlannedSource:
    """One path given on the command line and the source ids its frames carry."""

    path: Path
    names: tuple[str, ...]  # one per camera topic of a bag, else one
    cameras: BagCameras | None = None  # None: a video file or an image folder

    def describe(self) -> str:
        """The path, and for a bag the topics used."""
        if self.cameras is None:
            return self.path.name
        return f"{self.path.name} (rosbag2: {', '.join(self.cameras.topics)})"


@dataclass
class SourcePlan:
    """The run's sources in the order given, plus what reading them skipped."""

    sources: list[PlannedSource]
    skipped_images: list[Path] = field(default_factory=list)
    bag_reports: list[BagFramesReport] = field(default_factory=list)

    def frames(
        self, frame_step: int, holdout_fraction: float, max_frames: int | None
    ) -> Iterator[SourceFrame]:
        """Every source's frames, sampled and split per source (per topic for a bag)."""
        self.skipped_images.clear()
        self.bag_reports.clear()
        for source in self.sources:
            if source.cameras is None:
                yield from iter_source_frames(
                    source.path,
                    frame_step,
                    holdout_fraction,
                    max_frames,
                    self.skipped_images,
                    source.names[0],
                )
                continue
            report = BagFramesReport(str(source.path))
            self.bag_reports.append(report)
            yield from iter_bag_frames(
                source.cameras, frame_step, holdout_fraction, max_frames, source.names, report
            )


def plan_sources(paths: Sequence[str | Path], topics: Sequence[str] | None = None) -> SourcePlan:
    """Check the sources and pick each bag's camera topics (``topics``: every bag must have them).

    ValueError names the source and the problem.
    """
    planned: list[tuple[Path, list[str], BagCameras | None]] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ValueError(f"frame source {path} does not exist")
        error = bag_file_error(path)
        if error:
            raise ValueError(error)
        if is_bag_source(path):
            cameras = choose_cameras(path, topics)
            planned.append((path, cameras.source_names(), cameras))
        else:
            planned.append((path, [source_name(path)], None))
    if topics and not any(cameras for _, _, cameras in planned):
        raise ValueError(
            "--topic chooses camera topics of rosbag2 sources, and none of the sources is a "
            "rosbag2 recording (a folder with metadata.yaml, a .mcap or a .db3 file)"
        )
    names = iter(unique_names([name for _, source_names, _ in planned for name in source_names]))
    return SourcePlan(
        [
            PlannedSource(path, tuple(next(names) for _ in source_names), cameras)
            for path, source_names, cameras in planned
        ]
    )
