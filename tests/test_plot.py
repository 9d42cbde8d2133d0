"""xpnet/plot.py: the loss and accuracy curves of a run, labelled with the run, as a PNG."""

from pathlib import Path

import pytest


def test_plot_labels_the_run_and_shows_test_loss(tmp_path):
    pytest.importorskip("matplotlib")
    from xpnet.plot import iters_per_epoch, plot_history, run_label
    from xpnet.trainer import History

    h = History(loss=[2.3 * 0.99 ** i for i in range(1200)], train_acc=[0.1, 0.93, 0.95], test_acc=[0.1, 0.92, 0.94],
                eval_iters=[0, 600, 1200], final_train_acc=0.955, final_test_acc=0.945,
                config={"net": {"class": "TwoLayerNet", "sizes": [784, 50, 10], "dtype": "float32"},
                        "device": "cpu", "optimizer": "SGD", "lr": 0.1, "batch_size": 100, "iters": 1200,
                        "n_train": 60000})
    h.test_loss = [2.3, 0.3, 0.2]  # shown when the history has it
    assert iters_per_epoch(h) == 600
    label = run_label(h)
    assert "TwoLayerNet 784-50-10" in label and "cpu" in label and "SGD lr 0.1" in label and "0.9450" in label
    assert (Path(plot_history(h, tmp_path / "c.png"))).read_bytes()[:4] == b"\x89PNG"
