"""One sampler over a run of epochs gives each epoch's own order, cut to whole batches."""

from __future__ import annotations

from torch.utils.data import DistributedSampler

from togethernet_ros.training.training_batches import EpochSpanSampler


def per_epoch_reference(base: DistributedSampler, epoch: int, batch: int) -> list[tuple[int, int]]:
    base.set_epoch(epoch)
    indices = [int(i) for i in base]
    whole = len(indices) // batch * batch
    return [(epoch, index) for index in indices[:whole]]


def test_epochs_follow_each_other_in_their_own_order_without_partial_batches():
    data = list(range(37))
    base = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=5, drop_last=True)
    span = EpochSpanSampler(base, batch_size=8, first_epoch=2, end_epoch=5)
    assert span.steps_per_epoch == 4
    produced = list(span)
    expected = [pair for epoch in (2, 3, 4) for pair in per_epoch_reference(base, epoch, 8)]
    assert produced == expected
    assert len(span) == len(produced) == 3 * 32
    # Orders differ between epochs (a reshuffle per epoch), and a resumed run starts mid-way.
    assert [i for e, i in produced if e == 2] != [i for e, i in produced if e == 3]
    assert list(EpochSpanSampler(base, 8, 4, 5)) == per_epoch_reference(base, 4, 8)
    assert list(EpochSpanSampler(base, 8, 5, 5)) == []
