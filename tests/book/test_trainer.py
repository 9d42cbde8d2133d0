"""The book's ``common/trainer.py`` call on xpnet's Trainer: its arguments, arithmetic, lists and
printed lines, a reader's own book-style net (``tests.book.ReaderNet``: the book's layers,
any input rank), images, and the two forms kept apart."""

import re

import numpy as np
import pytest

import xpnet
from xpnet.trainer import History, Trainer

from ..samples import three_classes
from . import ReaderNet

EPOCH_LINE = re.compile(r"=== epoch:(\d+), train acc:(\S+), test acc:(\S+) ===")


@pytest.fixture(scope="module")
def images(mnist):
    (x, t), (xt, tt) = xpnet.load_mnist(flatten=False)  # (N, 1, 28, 28), as the book's chapter 7-8 scripts
    return x[:2000], t[:2000], xt[:500], tt[:500]


def tiny(n=300, d=4, seed=0):
    """A separable two-class problem: the class is the sign of the first feature."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


# -- the book's call, lists and lines ------------------------------------------------------
def test_the_books_call_prints_the_books_lines(mnist, capsys):
    (x, t), (xt, tt) = mnist
    net = xpnet.TwoLayerNet(784, 50, 10, seed=0)
    trainer = Trainer(net, x[:1000], t[:1000], xt[:500], tt[:500], epochs=3, mini_batch_size=100,
                      optimizer='SGD', optimizer_param={'lr': 0.1}, evaluate_sample_num_per_epoch=None, verbose=True)
    assert trainer.iter_per_epoch == 10.0 and isinstance(trainer.iter_per_epoch, float) and trainer.max_iter == 30
    assert trainer.network is net and trainer.current_iter == 0 and trainer.current_epoch == 0
    assert trainer.train() is None
    lines = capsys.readouterr().out.splitlines()
    losses = [ln for ln in lines if ln.startswith("train loss:")]
    epochs = [EPOCH_LINE.fullmatch(ln) for ln in lines if ln.startswith("=== epoch:")]
    assert len(losses) == len(trainer.train_loss_list) == trainer.max_iter == trainer.current_iter == 30
    assert losses == ["train loss:" + str(v) for v in trainer.train_loss_list]
    assert all(epochs) and [int(m[1]) for m in epochs] == [1, 2, 3] == list(range(1, trainer.current_epoch + 1))
    assert [float(m[2]) for m in epochs] == trainer.train_acc_list
    assert [float(m[3]) for m in epochs] == trainer.test_acc_list
    # the book checks the epoch after the step it counts: step 0's loss, then epoch 1
    assert lines[0].startswith("train loss:") and lines[1].startswith("=== epoch:1,")
    assert lines[-2:] == ["=============== Final Test Accuracy ===============",
                          "test acc:" + str(net.accuracy(xt[:500], tt[:500]))]
    assert np.mean(trainer.train_loss_list[-5:]) < np.mean(trainer.train_loss_list[:5])
    h = trainer.history
    assert h.train_loss_list is h.loss and h.train_acc_list is h.train_acc and h.test_acc_list is h.test_acc
    assert h.eval_iters == [1, 11, 21]  # steps done at each epoch check (current_iter 0, 10, 20)


@pytest.mark.parametrize("n,batch,epochs", [(300, 100, 5), (250, 100, 4), (50, 100, 3), (1000, 300, 2), (1000, 64, 3)])
def test_the_books_arithmetic(n, batch, epochs):
    x, t = tiny(n)
    tr = Trainer(xpnet.TwoLayerNet(4, 5, 2, seed=0), x, t, x[:50], t[:50], epochs=epochs, mini_batch_size=batch,
                 verbose=False)
    iter_per_epoch = max(n / batch, 1)  # the book's lines, verbatim
    max_iter = int(epochs * iter_per_epoch)
    checks = [i for i in range(max_iter) if i % iter_per_epoch == 0]
    assert (tr.iter_per_epoch, tr.max_iter) == (iter_per_epoch, max_iter)
    tr.train()
    assert len(tr.train_loss_list) == max_iter and tr.current_iter == max_iter
    assert len(tr.train_acc_list) == len(tr.test_acc_list) == tr.current_epoch == len(checks)
    assert tr.history.eval_iters == [i + 1 for i in checks]


def test_the_books_arguments_by_position(mnist, capsys):
    (x, t), (xt, tt) = mnist
    tr = Trainer(xpnet.TwoLayerNet(784, 20, 10, seed=0), x[:500], t[:500], xt[:200], tt[:200],
                 2, 50, 'Adam', {'lr': 0.001}, 100, False)
    assert type(tr.optimizer) is xpnet.Adam and tr.optimizer.lr == 0.001 and tr.batch_size == 50
    assert tr.evaluate_sample_num_per_epoch == 100 and tr.verbose is False and tr.max_iter == 20
    tr.train()
    assert capsys.readouterr().out == ""


def test_the_books_defaults(mnist):
    (x, t), (xt, tt) = mnist
    tr = Trainer(xpnet.TwoLayerNet(784, 10, 10, seed=0), x[:1000], t[:1000], xt[:100], tt[:100], verbose=False)
    assert type(tr.optimizer) is xpnet.SGD and tr.optimizer.lr == 0.01 and tr.batch_size == 100
    assert tr.epochs == 20 and tr.max_iter == 200 and tr.evaluate_sample_num_per_epoch is None
    adam = Trainer(xpnet.TwoLayerNet(784, 10, 10, seed=0), x[:1000], t[:1000], xt[:100], tt[:100], epochs=1,
                   optimizer='adam')
    assert type(adam.optimizer) is xpnet.Adam and adam.optimizer.lr == 0.01  # the book's optimizer_param default


def test_train_step_is_one_step_and_its_epoch_check(mnist, capsys):
    (x, t), (xt, tt) = mnist
    tr = Trainer(xpnet.TwoLayerNet(784, 10, 10, seed=0), x[:300], t[:300], xt[:100], tt[:100], epochs=2)
    tr.train_step()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0] == "train loss:" + str(tr.train_loss_list[0]) and out[1].startswith("=== epoch:1,")
    assert tr.current_iter == 1 and tr.current_epoch == 1
    tr.train_step()
    assert tr.current_iter == 2 and tr.current_epoch == 1 and len(capsys.readouterr().out.splitlines()) == 1
    tr.train()  # as the book's: max_iter steps more
    assert tr.current_iter == len(tr.train_loss_list) == 2 + tr.max_iter


@pytest.mark.parametrize("book_net", [False, True], ids=["xpnet-net", "reader-net"])
def test_the_loss_recorded_is_the_books_after_the_update(mnist, book_net):
    """The book's train_step records ``network.loss(x_batch, t_batch)`` after the update: with every
    sample the same, any batch is the first 100, so each recorded loss is the net's loss right after."""
    (x, t), _ = mnist
    x1, t1 = np.repeat(x[:1], 100, axis=0), np.repeat(t[:1], 100)
    net = ReaderNet(784, 20, 10, weight_init_std=0.1) if book_net else xpnet.TwoLayerNet(784, 20, 10, seed=0)
    tr = Trainer(net, x1, t1, x1, t1, epochs=3, optimizer_param={'lr': 0.1}, verbose=False)
    before = float(net.loss(x1, t1))
    for _ in range(3):
        tr.train_step()
        assert tr.train_loss_list[-1] == pytest.approx(float(net.loss(x1, t1)), rel=1e-6, abs=1e-7)
    assert tr.train_loss_list[0] < before  # the loss after the first update, not the one it started from


def test_evaluate_sample_num_per_epoch_evaluates_the_first_samples(mnist):
    (x, t), (xt, tt) = mnist
    net = xpnet.TwoLayerNet(784, 20, 10, seed=0)
    # 100 samples, batches of 100: iter_per_epoch is 1, every step is checked, the last one too
    tr = Trainer(net, x[:100], t[:100], xt[:500], tt[:500], epochs=5, optimizer_param={'lr': 0.5},
                 evaluate_sample_num_per_epoch=30, verbose=False)
    tr.train()
    assert tr.current_epoch == 5 == tr.max_iter
    assert tr.train_acc_list[-1] == net.accuracy(x[:30], t[:30])
    assert tr.test_acc_list[-1] == net.accuracy(xt[:30], tt[:30])
    assert tr.history.final_test_acc == net.accuracy(xt[:500], tt[:500])  # the final accuracy: the whole set
    with pytest.raises(ValueError, match="evaluate_sample_num_per_epoch must be a positive integer"):
        Trainer(net, x[:100], t[:100], xt, tt, epochs=1, evaluate_sample_num_per_epoch=0)


# -- any net, any input rank ---------------------------------------------------------------
def test_a_readers_book_style_net_learns_images_with_the_books_trainer(images, capsys):
    x, t, xt, tt = images
    net = ReaderNet(784, 50, 10)
    tr = Trainer(net, x, t, xt, tt, epochs=10, mini_batch_size=100, optimizer='sgd', optimizer_param={'lr': 0.3})
    assert not tr.fast and tr.x_train.shape == (2000, 1, 28, 28)  # the book's protocol, the images as they are
    tr.train()
    out = capsys.readouterr().out
    assert out.count("=== epoch:") == 10 and out.count("train loss:") == 200
    assert tr.test_acc_list[-1] > 0.8 and tr.train_acc_list[0] < 0.5
    losses = tr.train_loss_list
    assert all(np.isfinite(losses)) and np.mean(losses[-20:]) < np.mean(losses[:20]) / 3


def test_xpnets_net_takes_images_on_its_fast_path(dev, images):
    x, t, xt, tt = images
    net = xpnet.TwoLayerNet(784, 50, 10, device=dev, dtype="float32", seed=0)
    tr = Trainer(net, x, t, xt, tt, epochs=5, optimizer='Momentum', optimizer_param={'lr': 0.05, 'momentum': 0.9},
                 evaluate_sample_num_per_epoch=500, verbose=False)
    assert tr.fast and tuple(tr.x_train.shape) == (2000, 784)
    tr.train()
    assert len(tr.train_loss_list) == 100 and tr.current_epoch == 5
    assert tr.test_acc_list[-1] > 0.8 and tr.history.final_test_acc > 0.8


def test_a_diverging_book_run_says_so(mnist):
    (x, t), (xt, tt) = mnist
    net = xpnet.TwoLayerNet(784, 50, 10, weight_init_std=1.0, dtype="float32", seed=0)
    tr = Trainer(net, x[:1000], t[:1000], xt[:100], tt[:100], epochs=30, optimizer_param={'lr': 1e10}, verbose=False)
    with np.errstate(all="ignore"), pytest.raises(xpnet.TrainingDivergedError, match=r"at iteration \d+"):
        tr.train()


def test_the_books_trainer_trains_a_dropout_batchnorm_net_with_nesterov():
    x, t = three_classes()
    net = xpnet.MultiLayerNetExtend(input_size=20, hidden_size_list=[16, 12], output_size=3, use_dropout=True,
                                    dropout_ration=0.1, use_batchnorm=True, seed=0)
    tr = Trainer(net, x, t, x[:100], t[:100], epochs=4, mini_batch_size=30, optimizer="Nesterov",
                 optimizer_param={"lr": 0.05}, verbose=False)
    tr.train()
    assert len(tr.train_acc_list) == 4 and tr.test_acc_list[-1] > 0.6 and tr.test_acc_list[-1] > tr.test_acc_list[0]


# -- what is refused ---------------------------------------------------------------------------
def test_an_unknown_optimizer_is_refused_by_name():
    x, t = tiny()
    with pytest.raises(ValueError, match=r"optimizer='foo': unknown optimizer.*Nesterov.*RMSprop"):
        Trainer(xpnet.TwoLayerNet(4, 5, 2, seed=0), x, t, x, t, epochs=1, optimizer="foo")


@pytest.mark.parametrize("name,cls", [("SGD", xpnet.SGD), ("sgd", xpnet.SGD), ("Momentum", xpnet.Momentum),
                                      ("AdaGrad", xpnet.AdaGrad), ("adagrad", xpnet.AdaGrad), ("ADAM", xpnet.Adam),
                                      ("Nesterov", xpnet.Nesterov), ("rmsprop", xpnet.RMSprop),
                                      ("RMSprop", xpnet.RMSprop)])
def test_the_books_optimizer_names_in_any_case(name, cls):
    x, t = tiny()
    tr = Trainer(xpnet.TwoLayerNet(4, 5, 2, seed=0), x, t, x, t, epochs=1, optimizer=name, optimizer_param={'lr': 0.02})
    assert type(tr.optimizer) is cls and tr.optimizer.lr == 0.02


def test_bad_optimizer_param_is_named():
    x, t = tiny()
    net = xpnet.TwoLayerNet(4, 5, 2, seed=0)
    with pytest.raises(TypeError, match=r"optimizer_param.*takes lr, momentum, not beta1"):
        Trainer(net, x, t, x, t, optimizer='momentum', optimizer_param={'lr': 0.1, 'beta1': 0.9})
    with pytest.raises(TypeError, match="optimizer_param must be a dict"):
        Trainer(net, x, t, x, t, optimizer_param=0.01)
    with pytest.raises(TypeError, match="optimizer_param was given with an optimizer object"):
        Trainer(net, x, t, x, t, optimizer=xpnet.SGD(0.1), optimizer_param={'lr': 0.1})
    with pytest.raises(ValueError, match="lr must be a positive"):
        Trainer(net, x, t, x, t, optimizer_param={'lr': -1})


@pytest.mark.parametrize("book,xpnet_kw", [({"epochs": 2}, {"iters": 100}),
                                           ({"mini_batch_size": 50}, {"batch_size": 50}),
                                           ({"optimizer_param": {"lr": 0.1}}, {"lr": 0.1}),
                                           ({"verbose": False}, {"log": None}),
                                           ({"evaluate_sample_num_per_epoch": 10}, {"eval_interval": 5}),
                                           ({"epochs": 1}, {"communicator": None})])
def test_the_two_forms_mixed_are_refused(book, xpnet_kw):
    x, t = tiny()
    (b,), (k,) = book, xpnet_kw
    with pytest.raises(TypeError, match=rf"{b} \(the book's form\) and {k} \(xpnet's form\)"):
        Trainer(xpnet.TwoLayerNet(4, 5, 2, seed=0), x, t, x, t, **book, **xpnet_kw)


def test_arguments_given_twice_or_too_many_are_refused():
    x, t = tiny()
    net = xpnet.TwoLayerNet(4, 5, 2, seed=0)
    with pytest.raises(TypeError, match="got epochs twice: by position"):
        Trainer(net, x, t, x, t, 2, epochs=3)
    with pytest.raises(TypeError, match="got optimizer twice"):
        Trainer(net, x, t, x, t, 2, 100, 'SGD', optimizer='adam')
    with pytest.raises(TypeError, match="at most 11 arguments by position"):
        Trainer(net, x, t, x, t, 2, 100, 'SGD', {'lr': 0.1}, None, True, 'extra')
    with pytest.raises(TypeError, match="got net and network"):
        Trainer(net, x, t, x, t, network=net, epochs=1)
    with pytest.raises(TypeError, match="needs a net"):
        Trainer(x_train=x, t_train=t, epochs=1)
    with pytest.raises(TypeError, match=r"test set every epoch.*x_test and t_test"):
        Trainer(net, x, t, epochs=1)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        Trainer(net, x, t, x, t, epochs=-1)


def test_the_books_keywords_name_the_net_network():
    x, t = tiny()
    net = xpnet.TwoLayerNet(4, 5, 2, seed=0)
    tr = Trainer(network=net, x_train=x, t_train=t, x_test=x, t_test=t, epochs=1, verbose=False)
    tr.train()
    assert tr.network is net and tr.current_iter == 3


def test_each_form_refuses_the_others_methods(tmp_path):
    x, t = tiny()
    net = xpnet.TwoLayerNet(4, 5, 2, seed=0)
    ours = Trainer(net, x, t, x, t)  # no argument of the book's: xpnet's form, its defaults
    assert ours.optimizer.lr == 0.1 and ours.max_iter == 10000
    for method in (ours.train, ours.train_step):
        with pytest.raises(TypeError, match=r"is the book's loop.*epochs=20.*call fit\(\)"):
            method()
    book = Trainer(net, x, t, x, t, epochs=1)
    with pytest.raises(TypeError, match=r"fit\(\) belongs to xpnet's form.*call train\(\)"):
        book.fit()
    with pytest.raises(TypeError, match=r"save_checkpoint\(\) belongs to xpnet's form.*save_net"):
        book.save_checkpoint(tmp_path / "c.npz")


def test_xpnets_form_keeps_its_own_lists_under_the_books_names(mnist):
    (x, t), (xt, tt) = mnist
    tr = Trainer(xpnet.TwoLayerNet(784, 10, 10, seed=0), x[:500], t[:500], xt[:100], tt[:100], iters=20,
                 eval_interval=5, log=None, progress=False)
    h = tr.fit()
    assert tr.train_loss_list is h.loss and len(tr.train_loss_list) == 20 == tr.current_iter == tr.max_iter
    assert tr.train_acc_list is h.train_acc and tr.current_epoch == 4 == len(tr.test_acc_list)
    from xpnet.history import History as Moved

    assert History is Moved is xpnet.History
