"""Turn expected user errors of the inference commands into one clear line and exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)


def reports_user_errors(command: str) -> Callable:
    """Decorate a `run(args) -> int` so bad input prints `togethernet COMMAND: error: ...`.

    Covers missing files, refused untrained weights (UntrainedWeightsError is a RuntimeError),
    broken checkpoints (CheckpointError is a ValueError) and invalid options.
    """

    def decorate(run: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(run)
        def wrapped(*args: object, **kwargs: object) -> int:
            try:
                return run(*args, **kwargs)
            except USER_ERRORS as error:
                print(f"togethernet {command}: error: {error}", file=sys.stderr)
                return 2

        return wrapped

    return decorate
