"""xpnet/cli.py: the ``xpnet`` command -- train, evaluate, predict, devices, gradcheck and bench's
hand-over -- its options, its output, and one line (never a traceback) for what it refuses."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.cli import main

from .idx_files import fashion_like, make_tiny_idx

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("tinyrun")
    assert main(["train", "--device", "cpu", "--data-dir", str(tiny), "--epochs", "10", "--batch-size", "30",
                 "--out", str(out), "--quiet", "--no-plot"]) == 0
    return out / "model.npz"


def test_train_writes_history_checkpoint_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--device", "cpu", "--iters", "700", "--out", str(out), "--seed", "1"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "epoch   1 (iter    600)" in text and "final test accuracy" in text and "wall time" in text
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["loss"]) == 700 and len(hist["test_acc"]) == 2 and hist["final_test_acc"] > 0.85
    assert (out / "model.npz").is_file()
    assert str(out / "history.json") in text
    pytest.importorskip("matplotlib")
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_train_deeper_net_with_adam(tmp_path, capsys):
    rc = main(["train", "--device", "cpu", "--sizes", "784,32,32,10", "--optimizer", "adam", "--lr", "0.002",
               "--weight-init", "he", "--iters", "200", "--out", str(tmp_path), "--no-plot"])
    assert rc == 0 and "plot: skipped" in capsys.readouterr().out


@pytest.mark.parametrize("args,msg", [
    (["--lr", "-1"], "expected a positive"),
    (["--iters", "zero"], "expected a positive integer"),
    (["--device", "tpu"], "unknown device"),
    (["--optimizer", "lbfgs"], "invalid choice"),
    (["--sizes", "784"], "at least two"),
    (["--seed", "-1"], "non-negative integer"),
    (["--weight-init", "glorot"], "expected a positive number"),
])
def test_bad_options_give_a_message_not_a_traceback(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", *args])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_quiet_prints_only_the_final_line(tmp_path, capsys):
    rc = main(["train", "--device", "cpu", "--iters", "30", "--out", str(tmp_path), "--quiet", "--no-plot"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("final test accuracy") and str(tmp_path) in lines[0]


def test_epochs_set_the_iterations(tiny, tmp_path, capsys):
    rc = main(["train", "--device", "cpu", "--data-dir", str(tiny), "--epochs", "3", "--batch-size", "30",
               "--out", str(tmp_path), "--no-plot"])
    out = capsys.readouterr().out
    assert rc == 0 and "30 iterations (3 epochs)" in out
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["config"]["iters"] == 30 and len(hist["loss"]) == 30 and hist["eval_iters"] == [0, 10, 20]


def test_iters_and_epochs_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--iters", "30", "--epochs", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--epochs" in err and "not allowed with argument --iters" in err


def test_help_shows_defaults_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for default in ("(default: 100)", "(default: sgd for mlp, adam for the convnets)", "(default: float32)",
                    "(default: 10000", "(default: 0)", "$XPNET_DEVICE"):
        assert default in " ".join(out.split()), default
    assert "--quiet" in out and "final line" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"xpnet {xpnet.__version__}"


def test_xpnet_device_chooses_the_device_of_train_and_devices(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XPNET_DEVICE", "array_api_strict")
    assert main(["devices"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        "default: array_api_strict (from XPNET_DEVICE=array_api_strict)"
    assert main(["train", "--data-dir", str(tiny), "--iters", "30", "--batch-size", "30", "--out", str(tmp_path),
                 "--quiet", "--no-plot"]) == 0
    assert json.loads((tmp_path / "history.json").read_text())["config"]["device"] == "array_api_strict"
    monkeypatch.delenv("XPNET_DEVICE")
    capsys.readouterr()
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("default: ") and "auto" in out.splitlines()[0]


@pytest.mark.parametrize("command", [["devices"], ["train", "--iters", "30"], ["gradcheck"]])
def test_bad_xpnet_device_is_one_line_naming_the_variable(command, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XPNET_DEVICE", "tpu")
    monkeypatch.chdir(tmp_path)  # a train that got past the device would write runs/ here
    assert main(command) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "XPNET_DEVICE='tpu'" in err
    assert not (tmp_path / "runs").exists()


def test_data_dir_trains_any_idx_dataset(tiny, tmp_path, capsys):
    """Not MNIST (8x8 images, 3 classes, no SHA256SUMS): input size and classes come from the data."""
    rc = main(["train", "--device", "cpu", "--data-dir", str(tiny), "--iters", "30", "--batch-size", "30",
               "--out", str(tmp_path), "--no-plot"])
    out = capsys.readouterr().out
    assert rc == 0 and "64-50-3" in out
    assert main(["train", "--device", "cpu", "--data-dir", str(tiny), "--sizes", "784,10", "--out",
                 str(tmp_path / "second")]) == 2
    assert not (tmp_path / "second").exists()  # a run that fails before its first checkpoint leaves no folder
    assert "--sizes must start with 64 (pixels per image) and end with 3 (classes)" in capsys.readouterr().err


def test_xpnet_train_on_another_idx_dataset(tmp_path, capsys):
    """A Fashion-MNIST look-alike (28x28, 10 classes, its own SHA256SUMS): trained as MNIST is."""
    fashion_like(tmp_path)
    rc = main(["train", "--device", "cpu", "--data-dir", str(tmp_path), "--iters", "5", "--batch-size", "10",
               "--out", str(tmp_path / "run"), "--quiet", "--no-plot"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "model.npz").is_file()
    (tmp_path / "SHA256SUMS").unlink()  # no digests to check the files against: train says so, in a line
    assert main(["train", "--device", "cpu", "--data-dir", str(tmp_path), "--iters", "5", "--batch-size", "10",
                 "--out", str(tmp_path / "run2"), "--quiet", "--no-plot"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("xpnet train: note: ") and "match none of the published digests" in err, err


@pytest.mark.slow
def test_xpnet_train_with_batchnorm_dropout_and_weight_decay(tiny, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "xpnet", "train", "--data-dir", str(tiny), "--sizes", "64,32,3",
                        "--batchnorm", "--dropout", "0.1", "--weight-decay", "0.001", "--optimizer", "rmsprop",
                        "--lr", "0.01", "--iters", "200", "--out", str(out), "--quiet", "--no-plot"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "history.json").read_text())["config"]["net"]
    assert cfg["class"] == "MultiLayerNetExtend" and cfg["use_batchnorm"] and cfg["dropout_ratio"] == 0.1
    assert cfg["weight_decay_lambda"] == 0.001
    net = xpnet.load_net(out / "model.npz")
    assert net.layers["Dropout1"].dropout_ratio == 0.1
    bad = subprocess.run([sys.executable, "-m", "xpnet", "train", "--data-dir", str(tiny), "--dropout", "1.5"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--dropout" in bad.stderr and "[0, 1)" in bad.stderr


def test_data_dir_with_a_wrong_digest_is_refused(tiny, tmp_path, capsys):
    d = make_tiny_idx(tmp_path / "d")
    (d / "SHA256SUMS").write_text("0" * 64 + " train-labels-idx1-ubyte (uncompressed)\n")
    assert main(["train", "--device", "cpu", "--data-dir", str(d), "--iters", "30", "--out", str(tmp_path)]) == 2
    assert "SHA-256" in capsys.readouterr().err


def test_evaluate(tiny, tiny_model, capsys):
    assert main(["evaluate", str(tiny_model), "--data-dir", str(tiny), "--device", "cpu", "--train"]) == 0
    out = capsys.readouterr().out
    test = next(line for line in out.splitlines() if line.startswith("test:"))
    assert "(60 images)" in test and float(test.split("accuracy ")[1].split(",")[0]) > 0.9
    assert "loss " in test and any(line.startswith("train:") and "(300 images)" in line for line in out.splitlines())


def test_predict_rows_of_a_dataset(tiny, tiny_model, capsys):
    assert main(["predict", str(tiny_model), "--data-dir", str(tiny), "--index", "0:5,-1", "--probs",
                 "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["index", "predicted", "probability", "label", "p0", "p1", "p2"]
    rows = [line.split() for line in lines[1:-1]]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4, 59]
    _, (_, t_test) = xpnet.load_idx_dataset(tiny)
    for r in rows:
        probs = [float(v) for v in r[4:7]]
        assert int(r[3]) == t_test[int(r[0])] and abs(sum(probs) - 1) < 1e-3
        assert int(r[1]) == int(np.argmax(probs)) and float(r[2]) == max(probs)
    assert lines[-1].startswith("correct: ") and lines[-1].endswith("of 6")


@pytest.mark.parametrize("kind", ["uint8", "float", "one"])
def test_predict_images_from_npy(tiny, tiny_model, tmp_path, capsys, kind):
    _, (x, t) = xpnet.load_idx_dataset(tiny, normalize=False, flatten=False, dtype="uint8")
    x = x[:7, 0]  # (7, 8, 8) uint8
    arr = {"uint8": x, "float": x.reshape(7, 64) / np.float32(255), "one": x[0]}[kind]
    np.save(tmp_path / "x.npy", arr)
    assert main(["predict", str(tiny_model), "--images", str(tmp_path / "x.npy"), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["index", "predicted", "probability"]
    pred = [int(line.split()[1]) for line in lines[1:]]
    assert len(pred) == (1 if kind == "one" else 7)
    assert np.mean(np.array(pred) == t[:len(pred)]) >= 0.8


@pytest.mark.parametrize("arr,msg", [
    (np.zeros((5, 63), np.uint8), "has shape (5, 63); the model takes images of 64 pixels"),
    (np.zeros((5, 64), np.int64), "holds int64; expected uint8"),
    (np.full((5, 64), 255.0), "values from 255 to 255; expected float in [0, 1]"),
    (np.array([{"a": 1}], dtype=object), "is not a NumPy .npy file"),
])
def test_predict_bad_images(tiny_model, tmp_path, capsys, arr, msg):
    np.save(tmp_path / "x.npy", arr, allow_pickle=True)
    assert main(["predict", str(tiny_model), "--images", str(tmp_path / "x.npy"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.splitlines()) == 1


MNIST_DIR = Path(xpnet.__file__).parent / "_data" / "mnist"


def test_predict_and_evaluate_bad_model_or_index(tiny, tiny_model, tmp_path, capsys):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    for argv, msg in [
        (["evaluate", str(tmp_path / "none.npz")], "MODEL: checkpoint"),
        (["evaluate", str(garbage)], "damaged or not an .npz checkpoint"),
        (["predict", str(garbage)], "damaged or not an .npz checkpoint"),
        (["evaluate", str(tiny_model), "--data-dir", str(MNIST_DIR)], ("the model takes 64 pixels per image but "
                                                                      f"--data-dir {MNIST_DIR} (test) has 784")),
        (["predict", str(tiny_model), "--data-dir", str(tiny), "--index", "60"], "--index 60 is out of range"),
        (["predict", str(tiny_model), "--data-dir", str(tiny), "--index", "50:40"], "selects no rows"),
    ]:
        assert main([*argv, "--device", "cpu"]) == 2, argv
        err = capsys.readouterr().err
        assert msg in err and len(err.splitlines()) == 1, (argv, err)
    with pytest.raises(SystemExit):
        main(["predict", str(tiny_model), "--index", "a:b"])
    assert "expected rows like" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("command", ["devices", ("train --device cpu --iters 300 --eval-interval 100 --quiet "
                                                 "--no-plot --out {tmp}")], ids=["devices", "train"])
def test_closed_pipe_ends_quietly(command, tmp_path):
    """`xpnet ... | head`: no BrokenPipeError traceback; the status of a program ended by SIGPIPE.
    (Training on MNIST: each evaluation takes long enough that the next line meets a closed pipe.)"""
    cmd = f"{sys.executable} -m xpnet {command.format(tmp=tmp_path / 'o')}"
    if "train" in cmd:
        cmd = cmd.replace(" --quiet", "")
    r = subprocess.run(["bash", "-c", f"{cmd} | head -n 1; echo \"status ${{PIPESTATUS[0]}}\""],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    status = r.stdout.splitlines()[-1]
    assert status in ("status 0", "status 141"), r.stdout
    assert len(r.stdout.splitlines()) == 2  # head's one line and the status
    cmd = cmd.replace(str(tmp_path / "o"), str(tmp_path / "o2"))  # a fresh folder: o holds the first run
    r = subprocess.run(["bash", "-c", f"{cmd} | head -n 0; echo \"status ${{PIPESTATUS[0]}}\""],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.stderr == "" and r.stdout.strip() in ("status 141", "status 0"), (r.stdout, r.stderr)


def test_sizes_must_fit_mnist(tmp_path, capsys):
    assert main(["train", "--sizes", "100,10", "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "--sizes must start with 784" in capsys.readouterr().err


def test_missing_data_dir(tmp_path, capsys):
    assert main(["train", "--device", "cpu", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_run_at_chance_level_exits_non_zero_saying_so(tmp_path, capsys):
    rc = main(["train", "--device", "cpu", "--lr", "1e4", "--iters", "1200", "--hidden", "20", "--quiet", "--no-plot",
               "--out", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert rc in (1, 2), out
    assert ("chance level" in err and "smaller learning rate" in err) or "diverged" in err, err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_a_message(tmp_path, capsys):
    rc = main(["train", "--device", "cpu", "--lr", "1e10", "--weight-init", "1", "--iters", "300",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 2 and "smaller learning rate" in capsys.readouterr().err


def test_devices(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "cpu" in out and "array_api_strict" in out and "cuda" in out


@pytest.mark.slow
def test_module_entry_point_and_gradcheck(tiny):
    """``python -m xpnet``; the gradient check on the bundled MNIST is the book's script's test
    (test_examples.py), here on the small dataset."""
    r = subprocess.run([sys.executable, "-m", "xpnet", "gradcheck", "--device", "cpu", "--data-dir", str(tiny)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "TwoLayerNet 64-50-3 on cpu" in r.stdout and "W1: max abs diff" in r.stdout and "PASSED" in r.stdout


# -- the book's convnets ---------------------------------------------------------------------
def test_train_a_simple_conv_net_resume_evaluate_and_predict_it(tiny, tmp_path, capsys):
    """``--net simpleconv``: the images stay (N, 1, 8, 8); the book's Adam by default; the run
    resumes, and evaluate and predict take its checkpoint."""
    out = tmp_path / "run"
    common = ["--data-dir", str(tiny), "--no-plot"]
    assert main(["train", "--device", "cpu", "--net", "simpleconv", "--iters", "40", "--eval-interval", "20",
                 "--batch-size", "30", "--hidden", "16", "--out", str(out), *common]) == 0
    text = capsys.readouterr().out
    assert "SimpleConvNet(1x8x8, 30 filters of 5, hidden 16, 3 classes" in text and "adam lr 0.001" in text
    hist = json.loads((out / "history.json").read_text())
    assert hist["config"]["net"]["class"] == "SimpleConvNet" and len(hist["loss"]) == 40
    assert main(["train", "--resume", str(out), "--iters", "80", *common]) == 0
    assert "resuming" in capsys.readouterr().out
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["loss"]) == 80 and hist["final_test_acc"] > 0.6, hist["final_test_acc"]
    assert main(["evaluate", str(out / "model.npz"), "--data-dir", str(tiny)]) == 0
    assert f"accuracy {hist['final_test_acc']:.4f}" in capsys.readouterr().out
    images = tmp_path / "x.npy"
    (_, _), (xt, _) = xpnet.load_idx_dataset(tiny)
    np.save(images, xt[:3])  # flat rows, as --images takes them
    assert main(["predict", str(out / "model.npz"), "--images", str(images)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4


def test_train_a_deep_conv_net_briefly(tiny, tmp_path, capsys):
    assert main(["train", "--device", "cpu", "--net", "deepconv", "--iters", "3", "--batch-size", "10",
                 "--data-dir", str(tiny), "--out", str(tmp_path / "run"), "--quiet", "--no-plot"]) == 0
    assert xpnet.load_net(tmp_path / "run" / "model.npz").config["class"] == "DeepConvNet"


@pytest.mark.parametrize("args, message", [
    (["--net", "simpleconv", "--sizes", "64,3"], "--sizes does not apply to --net simpleconv"),
    (["--net", "deepconv", "--batchnorm"], "--batchnorm does not apply to --net deepconv"),
    (["--net", "deepconv", "--weight-init", "he"], "--weight-init does not apply to --net deepconv"),
])
def test_options_of_the_mlp_are_refused_for_the_convnets(tiny, tmp_path, capsys, args, message):
    assert main(["train", "--device", "cpu", *args, "--data-dir", str(tiny), "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_an_activation_without_sizes_is_not_ignored(tiny, tmp_path, capsys):
    assert main(["train", "--device", "cpu", "--activation", "sigmoid", "--iters", "2", "--data-dir", str(tiny),
                 "--out", str(tmp_path / "r"), "--no-plot"]) == 0
    assert "MultiLayerNet(64-50-3, sigmoid" in capsys.readouterr().out


def test_a_negative_size_is_refused_not_read_as_a_dash(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--sizes", "784,-5,10"])
    assert e.value.code == 2 and "layer sizes must be positive, got '784,-5,10'" in capsys.readouterr().err


def test_tanh_trains_from_the_command_line_and_evaluate_takes_the_run_folder(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--device", "cpu", "--activation", "tanh", "--sizes", "64,8,3", "--iters", "3",
                 "--data-dir", str(tiny), "--out", str(out), "--no-plot", "--quiet"]) == 0
    assert xpnet.load_net(out / "model.npz").config["activation"] == "tanh"
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data-dir", str(tiny)]) == 0  # the folder train printed
    assert "accuracy" in capsys.readouterr().out


def test_an_empty_out_and_a_bad_thread_setting_are_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", "", "--iters", "1", "--no-plot"]) == 2
    assert "--out is empty" in capsys.readouterr().err and list(tmp_path.iterdir()) == []  # nothing written here
    monkeypatch.setenv("XPNET_BLAS_THREADS", "two")
    assert main(["train", "--iters", "1", "--out", str(tmp_path / "r"), "--no-plot"]) == 2
    assert "XPNET_BLAS_THREADS must be a positive integer or 'auto', got 'two'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_resume_with_more_epochs_records_the_new_length(tiny, tmp_path, capsys):
    """history.json said the old iters after --resume --epochs (the run went on to the new length)."""
    common = ["--data-dir", str(tiny), "--no-plot", "--quiet"]
    assert main(["train", "--device", "cpu", "--epochs", "2", "--batch-size", "30", "--out", str(tmp_path / "r"),
                 *common]) == 0
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", "3", *common]) == 0
    hist = json.loads((tmp_path / "r" / "history.json").read_text())
    assert hist["config"]["iters"] == 30 and len(hist["loss"]) == 30
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", "1", *common]) == 2  # shorter than done
    assert "at step 30, past iters=10" in capsys.readouterr().err


def test_resume_refuses_options_that_would_change_the_run(tiny, tmp_path, capsys):
    """--resume used to drop --lr, --seed, --hidden, ... with exit 0: the run went on as saved."""
    common = ["--data-dir", str(tiny), "--no-plot"]
    run = str(tmp_path / "r")
    assert main(["train", "--device", "cpu", "--epochs", "1", "--batch-size", "30", "--lr", "0.2", "--out", run,
                 "--quiet", *common]) == 0
    capsys.readouterr()
    for extra, named in [(["--lr", "0.5"], "--lr 0.5 (the run's: 0.2)"), (["--seed", "3"], "--seed 3 (the run's: 0)"),
                         (["--batch-size", "10", "--optimizer", "adam"],
                          "--optimizer adam (the run's: sgd), --batch-size 10 (the run's: 30)"),
                         (["--hidden", "20"], "--hidden 20 (the run's: 50)"),
                         (["--batchnorm"], "--batchnorm (the run's: False)"),
                         (["--dtype", "float64"], "--dtype float64 (the run's: float32)"),
                         (["--net", "simpleconv"], "--net simpleconv (the run's: mlp)")]:
        assert main(["train", "--resume", run, *extra, *common]) == 2, extra
        err = capsys.readouterr().err
        assert f"continues the run with its own settings; {named} would change it" in err, err
    # the same values as saved are no change; a longer run is applied and said
    assert main(["train", "--resume", run, "--lr", "0.2", "--batch-size", "30", "--seed", "0", "--epochs", "2",
                 *common]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "at step 10 of 20 (--epochs makes it 20)" in out


def test_evaluate_predict_and_resume_use_the_data_the_model_was_trained_on(tiny, tmp_path, capsys):
    """Without --data-dir they used MNIST, whatever the run had trained on."""
    run = tmp_path / "r"
    assert main(["train", "--device", "cpu", "--data-dir", str(tiny), "--iters", "20", "--batch-size", "30",
                 "--out", str(run), "--quiet", "--no-plot"]) == 0
    capsys.readouterr()
    assert json.loads((run / "history.json").read_text())["config"]["data_dir"] == str(tiny.resolve())
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"data: --data-dir {tiny.resolve()} (where {run} was trained" in out and "(" in out
    assert main(["predict", str(run), "--device", "cpu", "--index", "0:2"]) == 0
    assert "where" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--iters", "40", "--quiet", "--no-plot"]) == 0
    assert json.loads((run / "history.json").read_text())["config"]["data_dir"] == str(tiny.resolve())
