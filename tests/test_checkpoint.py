"""xpnet/checkpoint.py: a net's parameters and architecture in one .npz, no pickle, written
atomically with the usual permissions and loaded on any device; training state beside them;
what would not load back as it was (state, edited layers) refused when saving.

The hostile-file reading of checkpoints is io's: test_io.py."""

import json
import zipfile

import numpy as np
import pytest

import xpnet
from xpnet.checkpoint import Checkpoint, CheckpointError, checkpoint_meta, load_checkpoint, load_net, save_net
from xpnet.layers import Relu, Tanh
from xpnet.trainer import Trainer

from .samples import extend_net, small, three_classes


def small_net():
    return xpnet.TwoLayerNet(4, 3, 2, device="cpu", seed=0)


def test_history_and_checkpoint_roundtrip(tmp_path, dev, mnist):
    net = xpnet.MultiLayerNet([784, 20, 20, 10], weight_init="he", device=dev, dtype="float32", seed=3)
    h = Trainer(net, *small(mnist, 1000), iters=30, log=None, progress=False).fit()
    h.save_json(tmp_path / "history.json")
    d = json.loads((tmp_path / "history.json").read_text())
    assert {"loss", "train_acc", "test_acc", "wall_time_s"} <= set(d) and len(d["loss"]) == 30
    path = save_net(net, tmp_path / "model")
    assert path.endswith(".npz") and not [f for f in tmp_path.iterdir() if f.name.startswith(".tmp")]
    back = load_net(path, device="cpu")  # e.g. trained on a GPU, loaded on a laptop
    assert back.sizes == net.sizes and back.device.name == "cpu"
    for k in net.params:
        np.testing.assert_array_equal(back.params[k], dev.to_numpy(net.params[k]))
    x = mnist[1][0][:100]
    np.testing.assert_allclose(back.predict(x), dev.to_numpy(net.predict(dev.asarray(x))), rtol=1e-4, atol=1e-5)
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere
        assert "__meta__" in z.files


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    net = xpnet.TwoLayerNet(4, 3, 2, device="cpu", seed=0)
    path = save_net(net, tmp_path / "m.npz")
    before = (tmp_path / "m.npz").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_net(net, path)
    assert (tmp_path / "m.npz").read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.npz"]


def test_saved_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    path = save_net(xpnet.TwoLayerNet(4, 3, 2, device="cpu", seed=0), tmp_path / "m.npz")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_a_net_with_edited_layers_is_not_saved_as_something_else(tmp_path):
    net = xpnet.TwoLayerNet(8, 5, 3, device="cpu", seed=0)
    save_net(net, tmp_path / "plain.npz")
    assert type(load_net(tmp_path / "plain.npz").layers["Relu1"]) is Relu
    net.layers["Relu1"] = Tanh()
    assert "sizes" not in net.config and net.config["layers"] == ["Affine", "Tanh", "Affine"]
    save_net(net, tmp_path / "edited.npz")  # saved as a net its code builds again, never as a plain one
    with pytest.raises(CheckpointError, match=r"xpnet does not rebuild .*net=TwoLayerNet\(\.\.\.\)"):
        load_net(tmp_path / "edited.npz")
    again = xpnet.TwoLayerNet(8, 5, 3, device="cpu", seed=1)
    again.layers["Relu1"] = Tanh()
    assert load_net(tmp_path / "edited.npz", net=again) is again
    for k in net.params:
        np.testing.assert_array_equal(again.params[k], net.params[k])
    assert again.layers["Affine1"].W is again.params["W1"]  # filled in place: the layers compute with it


class ReadersNet:
    """A reader's own net, as the book's chapter 5 writes one: params, gradient, loss."""

    def __init__(self, hidden=5, seed=0):
        g = np.random.default_rng(seed)
        self.params = {"W1": 0.1 * g.standard_normal((8, hidden)), "b1": np.zeros(hidden),
                       "W2": 0.1 * g.standard_normal((hidden, 3)), "b2": np.zeros(3)}


def test_a_readers_net_is_saved_and_filled_in_by_its_own_code(tmp_path):
    net = ReadersNet(seed=0)
    path = save_net(net, tmp_path / "mine")
    with pytest.raises(CheckpointError, match="ReadersNet, a net xpnet does not rebuild"):
        load_net(path)
    again = ReadersNet(seed=1)
    W1 = again.params["W1"]
    assert load_net(path, net=again) is again and again.params["W1"] is W1
    for k in net.params:
        np.testing.assert_array_equal(again.params[k], net.params[k])
    with pytest.raises(CheckpointError, match=r"W1 \(8, 5\).*W1 \(8, 6\)"):
        load_net(path, net=ReadersNet(hidden=6))
    with pytest.raises(CheckpointError, match="holds a ReadersNet, not a TwoLayerNet"):
        load_net(path, net=xpnet.TwoLayerNet(8, 5, 3, device="cpu"))
    with pytest.raises(TypeError, match="keeps its own device"):
        load_net(path, device="cpu", net=again)


def test_today_format_without_state_still_loads(tmp_path):
    net = small_net()
    meta = {"format": "xpnet-checkpoint-1", "config": net.config}  # as xpnet wrote before state existed
    np.savez(tmp_path / "old.npz", __meta__=np.array(json.dumps(meta)),
             **{f"param/{k}": v for k, v in net.params.items()})
    ck = load_checkpoint(tmp_path / "old.npz", device="cpu")
    assert isinstance(ck, Checkpoint) and ck.arrays == {} and ck.meta == {}
    for k in net.params:
        np.testing.assert_array_equal(ck.net.params[k], net.params[k])
    assert load_net(tmp_path / "old.npz").sizes == [4, 3, 2]


# -- training state ------------------------------------------------------------------------
def test_state_round_trip(tmp_path):
    net = xpnet.MultiLayerNet([4, 5, 3, 2], "tanh", "xavier", device="cpu", seed=1)
    rng = np.random.default_rng(0)
    arrays = {"adam/m/W1": rng.standard_normal((4, 5)).astype(np.float32), "adam/v/b3": np.arange(2.0),
              "rng": np.arange(4, dtype=np.uint64) * (2 ** 62), "perm": rng.permutation(7).astype(np.int32),
              "step": np.array(12), "f16": np.ones((2, 0, 3), np.float16)}
    meta = {"iteration": 12, "epoch": 0.5, "optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.999]},
            "history": {"loss": [2.3, 2.1, float("inf")]}, "note": "résumé ✓", "none": None, "flag": True,
            "np": np.float32(0.5), "tuple": (1, 2)}
    path = save_net(net, tmp_path / "run", state={"arrays": arrays, "meta": meta})
    ck = load_checkpoint(path, device="cpu")
    assert set(ck.arrays) == set(arrays)
    for k, a in arrays.items():
        assert ck.arrays[k].dtype == a.dtype and ck.arrays[k].shape == a.shape
        np.testing.assert_array_equal(ck.arrays[k], a)
    assert ck.meta == dict(meta, np=0.5, tuple=[1, 2])
    assert ck.net.sizes == [4, 5, 3, 2] and ck.net.activation == "tanh"
    for k in net.params:
        np.testing.assert_array_equal(ck.net.params[k], net.params[k])
    assert load_net(path).sizes == [4, 5, 3, 2]  # load_net ignores the state
    with np.load(path, allow_pickle=False) as z:  # still a plain .npz, no pickle
        assert "state/adam/m/W1" in z.files
    # a checkpoint without state: empty state
    ck = load_checkpoint(save_net(net, tmp_path / "plain"))
    assert ck.arrays == {} and ck.meta == {}


@pytest.mark.parametrize("state,error,message", [
    ({"arrays": {"m": [1.0, 2.0]}}, TypeError, r"state\['arrays'\]\['m'\] is a builtins.list; pass host NumPy"),
    ({"arrays": {"m": np.zeros(2, bool)}}, TypeError, "has dtype bool; state arrays must be"),
    ({"arrays": {"m": np.zeros(2, complex)}}, TypeError, "has dtype complex128"),
    ({"arrays": {"a/../b": np.zeros(2)}}, ValueError, "state array name must be"),
    ({"arrays": {"": np.zeros(2)}}, ValueError, "state array name must be"),
    ({"meta": {1: "x"}}, TypeError, r"state\['meta'\] has the key 1; JSON keys must be strings"),
    ({"meta": {"a": np.zeros(2)}}, TypeError, r"state\['meta'\]\['a'\] is a numpy.ndarray"),
    ({"meta": [1]}, TypeError, r"state\['meta'\] must be a dict"),
    ({"optimizer": {}}, TypeError, "state must be None or a dict"),
    ("x", TypeError, "state must be None or a dict"),
])
def test_save_refuses_state_it_could_not_load_back(tmp_path, state, error, message):
    with pytest.raises(error, match=message):
        save_net(small_net(), tmp_path / "m.npz", state=state)
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_checkpoint_keeps_running_statistics_and_dropout_generators(dev, tmp_path):
    net = extend_net(dev)
    x, t = three_classes(40)
    xd, td = dev.asarray(x), dev.asarray(t)
    for _ in range(3):
        net.gradient(xd, td)
    xpnet.save_net(net, tmp_path / "m")
    back = xpnet.load_net(tmp_path / "m.npz", device=dev)
    assert type(back) is xpnet.MultiLayerNetExtend and back.config == net.config
    for k, v in net.buffers().items():
        np.testing.assert_array_equal(dev.to_numpy(back.buffers()[k]), dev.to_numpy(v), err_msg=k)
    np.testing.assert_array_equal(dev.to_numpy(back.predict(xd)), dev.to_numpy(net.predict(xd)))
    net.gradient(xd, td)
    back.gradient(xd, td)  # the next masks are the same
    np.testing.assert_array_equal(dev.to_numpy(back.layers["Dropout2"].mask), dev.to_numpy(net.layers["Dropout2"].mask))


def test_a_checkpoint_with_damaged_running_statistics_is_refused(tmp_path):
    net = extend_net()
    xpnet.save_net(net, tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m.npz") as z, zipfile.ZipFile(tmp_path / "bad.npz", "w") as out:
        for item in z.infolist():
            if item.filename != "buffer/BatchNorm2/running_var.npy":
                out.writestr(item, z.read(item))
    with pytest.raises(xpnet.CheckpointError, match="missing members.*BatchNorm2/running_var"):
        xpnet.load_net(tmp_path / "bad.npz")


def test_the_path_save_net_was_given_loads_and_a_folder_is_refused(tmp_path):
    net = xpnet.TwoLayerNet(4, 3, 2, seed=0, device="cpu")
    written = xpnet.save_net(net, tmp_path / "model")
    assert written == str(tmp_path / "model.npz")
    back = xpnet.load_net(tmp_path / "model")  # without the .npz save_net added
    np.testing.assert_array_equal(back.params["W1"], net.params["W1"])
    assert checkpoint_meta(tmp_path / "model") == {}  # a net saved without training state: none, read the same way
    with pytest.raises(ValueError, match=r"names a folder; give the checkpoint a file name"):
        xpnet.save_net(net, tmp_path)
    assert not (tmp_path / ".npz").exists()
