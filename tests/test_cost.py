"""The epoch-time estimate shown before a fit starts reproduces this machine's benchmark."""
import pytest

from flowdash import cost

W2 = dict(train_intervals=[10075], val_intervals=[10310])   # example1: 1 + 1 trials of 100 s


@pytest.mark.parametrize("N, Nv, measured", [
    # bench/run.py on this machine (README: W2 and its scaling table), seconds per epoch
    (1793, 64, 0.0448), (113, 64, 0.0220), (449, 64, 0.0241), (7169, 64, 0.1298),
    (1793, 16, 0.0124), (1793, 256, 0.3714),
    # the same epoch with many eigenpairs: the dense solver and long passes
    (1793, 512, 4.85), (1793, None, 17.96), (449, None, 0.859),
])
def test_w2_epoch_and_its_scaling(N, Nv, measured):
    assert cost.epoch_seconds(N, Nv, **W2) == pytest.approx(measured, rel=0.25)


def test_w3_and_w5():
    # W3: one NLL + gradient, 30 trials, 2830 spikes, N = 113, Nv = N - 2 (no validation)
    assert cost.epoch_seconds(113, None, [2860]) == pytest.approx(0.015, rel=0.25)
    # W5: 4 conditions (one peq each), 1117 trials, 17952 spikes, split even/odd
    assert cost.epoch_seconds(113, None, [2384] * 4, [2383] * 4) == pytest.approx(0.062, rel=0.25)


def test_mini_batches_pass_over_the_training_data_again():
    one = cost.epoch_seconds(1793, 64, **W2)
    four = cost.epoch_seconds(1793, 64, **W2, mini_batches=4)
    assert four > one + cost.pass_seconds(64, 0, 10075) and cost.SLOW_EPOCH > one
    assert cost.epoch_seconds(1793, None, **W2) > cost.SLOW_EPOCH
