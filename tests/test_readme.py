"""The README's map of the book's files: every file it names exists, and every file of the book's
``common/``, ``dataset/``, ``ch05/`` and ``ch06/`` that holds code has a row."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK_FILES = [
    "common/functions.py", "common/gradient.py", "common/layers.py", "common/multi_layer_net.py",
    "common/optimizer.py", "common/trainer.py", "common/multi_layer_net_extend.py", "common/util.py",
    "dataset/mnist.py", "ch05/layer_naive.py", "ch05/buy_apple.py", "ch05/buy_apple_orange.py",
    "ch05/two_layer_net.py", "ch05/gradient_check.py", "ch05/train_neuralnet.py",
    *(f"ch06/{n}.py" for n in ("optimizer_compare_naive", "optimizer_compare_mnist", "weight_init_compare",
                              "weight_init_activation_histogram", "batch_norm_test", "batch_norm_gradient_check",
                              "overfit_weight_decay", "overfit_dropout", "hyperparameter_optimization")),
]


def _map_rows() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Where the book's files live", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    return [(book.strip(), ours.strip()) for book, ours in rows]


def test_every_book_file_has_a_row():
    named = " ".join(book for book, _ in _map_rows())
    assert [f for f in BOOK_FILES if f"`{f}`" not in named] == []


def test_every_xpnet_path_in_the_map_exists():
    rows = _map_rows()
    paths = {p for _, ours in rows for p in re.findall(r"`((?:xpnet|examples)/[\w/.]*)`", ours)}
    assert len(paths) >= 12
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
