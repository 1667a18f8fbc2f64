"""Per-epoch CSV log (+ TensorBoard scalars when the package is installed)."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path

from togethernet_ros.evaluation.atomic_write import write_atomically

LOGGER = logging.getLogger("togethernet_ros")


class TrainingLog:
    """Appends one CSV row per epoch; mirrors every number to TensorBoard if available.

    ``earlier_rows`` (a resumed run: the rows of the epochs its checkpoint holds) replace
    whatever ``log.csv`` held, so the log has each epoch of the run once: rows of epochs after
    the checkpoint (resuming an earlier one), a row torn by a kill, or one missing because the
    run stopped between writing ``last.pt`` and its row, would otherwise stay wrong for good.
    Without them (a new run) the log starts empty. ``first_epoch`` is the epoch the run
    starts with: TensorBoard events from it on are dropped.
    """

    def __init__(
        self,
        out_dir: str | Path,
        tensorboard: bool = True,
        earlier_rows: Sequence[dict] | None = None,
        first_epoch: int = 1,
    ):
        self.path = Path(out_dir) / "log.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] | None = None
        if earlier_rows:
            self._columns = list(earlier_rows[0])
            text = io.StringIO(newline="")
            writer = csv.writer(text)
            writer.writerow(self._columns)
            for row in earlier_rows:
                writer.writerow([_format(row.get(column)) for column in self._columns])
            data = text.getvalue().encode()
            write_atomically(self.path, lambda handle: handle.write(data))
        else:
            self.path.unlink(missing_ok=True)
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # A resumed run drops the events of the epochs it runs again.
                self._writer = SummaryWriter(
                    str(Path(out_dir) / "tensorboard"), purge_step=first_epoch
                )
            except ImportError:
                LOGGER.info("tensorboard not installed: logging to %s only", self.path)

    def write(self, epoch: int, values: dict[str, float]) -> None:
        """Record the numbers of one finished epoch."""
        row = {"epoch": epoch, **values}
        if self._columns is None:
            self._columns = list(row)
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self._columns)
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([_format(row.get(column)) for column in self._columns])
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, int | float):
                    self._writer.add_scalar(key, value, epoch)
            self._writer.flush()

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()


def logged_rows(out_dir: str | Path, through_epoch: int) -> list[dict]:
    """The whole rows of ``log.csv`` for epochs 1..``through_epoch``, each epoch once.

    For resuming a checkpoint that does not carry its rows (written before they were kept in
    it): rows of later epochs, repeated epochs and a row torn by a kill are left out.
    """
    path = Path(out_dir) / "log.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            return []
        rows: dict[int, dict] = {}
        for values in reader:
            if len(values) != len(header):
                continue  # torn
            try:
                epoch = int(values[0])
            except ValueError:
                continue
            if 1 <= epoch <= through_epoch:
                row = {key: _number(value) for key, value in zip(header, values, strict=True)}
                rows[epoch] = row | {"epoch": epoch}  # a repeated epoch: the last row counts
    return [rows[epoch] for epoch in sorted(rows)]


def _number(text: str) -> float | str | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _format(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
