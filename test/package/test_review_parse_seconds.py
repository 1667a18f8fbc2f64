"""Time-out options say what is wrong with the value they refuse (review of today's changes)."""

from __future__ import annotations

import argparse

import pytest

from togethernet_ros.inference.cli_arguments import parse_seconds


@pytest.mark.parametrize("text", ["inf", "nan", "0", "-3"])
def test_a_refused_time_out_is_named_with_the_rule_it_breaks(text):
    # Was "must be > 0 seconds, got inf": inf is > 0, so the message contradicted itself.
    with pytest.raises(
        argparse.ArgumentTypeError, match=f"^must be a finite number of seconds > 0, got {text}$"
    ):
        parse_seconds(text)


def test_a_finite_positive_time_out_is_taken():
    assert parse_seconds("2.5") == 2.5
