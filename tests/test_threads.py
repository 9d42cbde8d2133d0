"""xpnet/threads.py: how many threads the CPU's BLAS runs a step on -- ``blas_thread_limit``, the
policy behind ``Device.step_scope`` and ``XPNET_BLAS_THREADS``, and the chooser that races
thread counts on a busy machine."""

import pytest

import xpnet
from xpnet.backend import null_scope
from xpnet.threads import ThreadChooser, _blas_controller, blas_thread_limit


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_blas_thread_limit_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match=r"blas_thread_limit\(n\): n must be a positive integer"):
        with blas_thread_limit(bad):
            pass


def test_blas_thread_limit_holds_the_blas_to_its_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with blas_thread_limit(1) as applied:
        assert applied is True
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)


def test_step_scope_policy(monkeypatch):
    cpu = xpnet.device("cpu")
    monkeypatch.delenv("XPNET_BLAS_THREADS", raising=False)
    assert cpu.step_scope(1e9) is null_scope()  # big products keep every thread
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with cpu.step_scope(1e6):  # small ones run on one thread: reproducible, and safe on a busy machine
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert all(i["num_threads"] == 1 for i in blas)
    strict = xpnet.device("array_api_strict")
    assert strict.step_scope(1e6) is strict.scope()  # no policy off the NumPy CPU


@pytest.mark.parametrize("value", ["two", "zero"])
def test_a_bad_blas_thread_setting_is_named(monkeypatch, value):
    monkeypatch.setenv("XPNET_BLAS_THREADS", value)
    with pytest.raises(ValueError, match=rf"XPNET_BLAS_THREADS.*positive integer or 'auto', got '{value}'"):
        xpnet.device("cpu").step_scope(1e6)


def test_products_openblas_never_threads_get_no_thread_scope(monkeypatch):
    monkeypatch.setenv("XPNET_BLAS_THREADS", "1")
    assert xpnet.device("cpu").step_scope(1e3) is null_scope()  # 4x16x8: nothing to hold back


def test_blas_controller_kept_for_the_benchmark():
    ctl = _blas_controller()
    if ctl is not None:
        with ctl.limit(limits=1, user_api="blas"):
            pass


def test_thread_chooser_keeps_the_faster_count_and_races_again():
    c = ThreadChooser(full=2, probes=3, every=10)
    seen = []
    for _ in range(6):  # the race: both counts, alternately
        n = c.pick()
        seen.append(n)
        c.record(n, 1.0 if n == 1 else 3.0)  # a busy machine: one thread is 3x faster
    assert sorted(seen) == [1, 1, 1, 2, 2, 2] and c.choice == 1
    assert [c.pick() for _ in range(9)] == [1] * 9
    raced = []
    for _ in range(6):  # then the race again: the machine went idle, two threads win now
        n = c.pick()
        raced.append(n)
        c.record(n, 1.0 if n == 1 else 0.8)
    assert sorted(raced) == [1, 1, 1, 2, 2, 2] and c.choice == 2
    assert ThreadChooser(full=1).pick() == 1  # one core: nothing to choose


def test_thread_chooser_races_again_when_its_choice_turns_slow():
    c = ThreadChooser(full=2, probes=3, every=1000)
    for _ in range(6):
        n = c.pick()
        c.record(n, 1.0 if n == 2 else 2.0)  # idle: two threads win
    assert c.choice == 2
    for _ in range(3):  # then another program takes a core: the two-thread runs slow down 4x
        assert c.pick() == 2
        c.record(2, 4.0)
    assert c.pick() == 1 and c.choice is None  # the race again, starting with one thread
    c.record(1, 1.5)
    assert c.pick() == 2


def test_small_steps_are_timed_and_get_a_thread_count_when_asked(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setenv("XPNET_BLAS_THREADS", "auto")
    cpu = xpnet.device("cpu")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    for _ in range(12):
        with cpu.step_scope(1234567.0, steps=4):
            pass
    from xpnet.backends.cpu import _CHOOSERS

    assert _CHOOSERS[1234567.0].choice in _CHOOSERS[1234567.0].arms
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == before  # every block restores what it found


def test_blas_pools_read_and_set_what_threadpoolctl_sees():
    """The pools the policy sets (a pthreads OpenBLAS's own C functions where there is one) act
    on the very library threadpoolctl reports, and a worker thread's setting goes through
    threadpoolctl (which lets one thread at a time change a process-wide pool)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from xpnet.threads import blas_libraries

    def seen():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    pools = blas_libraries()
    assert len(pools) == len(seen())
    before = [p.get_num_threads() for p in pools]
    assert before == seen()
    try:
        for p in pools:
            p.set_num_threads(1)
        assert seen() == [1] * len(pools) and [p.get_num_threads() for p in pools] == [1] * len(pools)
        import threading

        errors = []

        def worker():
            try:
                for p in pools:
                    p.set_num_threads(1)
            except Exception as e:  # pragma: no cover - the failure is reported below
                errors.append(e)

        th = threading.Thread(target=worker)
        th.start()
        th.join()
        assert not errors
    finally:
        for p, n in zip(pools, before):
            p.set_num_threads(n)
    assert seen() == before


def test_a_conv_nets_products_count_its_filters_at_every_position(monkeypatch):
    """The thread policy sees a convolution's product (its filters at each of the image's
    positions), not only the Affines': a SimpleConvNet batch keeps every BLAS thread."""
    monkeypatch.delenv("XPNET_BLAS_THREADS", raising=False)
    assert xpnet.TwoLayerNet(784, 50, 10, device="cpu").product_size_per_sample == 784 * 50
    net = xpnet.SimpleConvNet(device="cpu")
    assert net.product_size_per_sample == 28 * 28 * 30 * 1 * 5 * 5  # above the Affine's 4320 * 100
    assert xpnet.device("cpu").step_scope(2 * 100 * net.product_size_per_sample) is null_scope()
