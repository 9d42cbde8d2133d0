import numpy as np
import pytest

import xpnet
from xpnet.device import DeviceUnavailableError


def test_devices_lists_the_always_available_ones():
    names = xpnet.devices()
    assert names[0] == "cpu"
    assert "array_api_strict" in names


def test_auto_never_fails_and_falls_back_to_cpu():
    dev = xpnet.device("auto")
    assert dev.name in xpnet.devices()
    if not any(n.startswith("cuda") for n in xpnet.devices()):
        assert dev.name == "cpu"


def test_cpu_device_is_numpy():
    dev = xpnet.device("cpu")
    assert dev.xp is np and dev.kind == "numpy"


@pytest.mark.parametrize("spec,msg", [
    ("tpu", "unknown device 'tpu'; expected one of: auto, cpu, cuda, cuda:N, array_api_strict, torch"),
    ("", "unknown device ''; expected one of"),
    ("cuda:x", "bad device index in 'cuda:x': expected cuda:N with N >= 0"),
    ("cuda:-1", "bad device index in 'cuda:-1'"),
    ("torch:cuda:y", "bad device index in 'torch:cuda:y'"),
])
def test_bad_specs_are_rejected_with_the_valid_forms(spec, msg):
    with pytest.raises(ValueError) as e:
        xpnet.device(spec)
    assert msg in str(e.value)


def test_unavailable_cuda_says_why_and_what_is_available():
    if any(n.startswith("cuda") for n in xpnet.devices()):
        with pytest.raises(DeviceUnavailableError, match="does not exist"):
            xpnet.device("cuda:99")
    else:
        with pytest.raises(DeviceUnavailableError) as e:
            xpnet.device("cuda")
        msg = str(e.value)
        assert ("CuPy" in msg or "GPU" in msg) and "Available: cpu" in msg


def test_device_type_error():
    with pytest.raises(TypeError, match="device must be a string"):
        xpnet.device(3)


def test_default_from_context_and_environment(monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE", "array_api_strict")
    assert xpnet.device().name == "array_api_strict"
    with xpnet.use_device("cpu") as d:
        assert d.name == "cpu" and xpnet.device().name == "cpu"
    assert xpnet.device().name == "array_api_strict"
    monkeypatch.delenv("XPNET_DEVICE")
    assert xpnet.device().name == xpnet.device("auto").name


def test_roundtrip_and_dtype(dev):
    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    a = dev.asarray(host, dtype="float32")
    assert a.dtype == dev.xp.float32
    assert dev.owns(a)
    back = dev.to_numpy(a)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, host.astype(np.float32))
    assert xpnet.device_of(a) is dev
    dev.synchronize()


def test_rng_is_seeded_and_in_range(dev):
    g1, g2 = dev.rng(7), dev.rng(7)
    a, b = dev.to_numpy(g1.normal((50, 4), "float64")), dev.to_numpy(g2.normal((50, 4), "float64"))
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.5 and 0.6 < a.std() < 1.4
    idx = dev.to_numpy(g1.integers(10, 1000))
    assert idx.shape == (1000,) and idx.min() >= 0 and idx.max() <= 9 and len(set(idx.tolist())) == 10
    assert dev.to_numpy(g1.normal((3,), "float32")).dtype == np.float32
    perm = dev.to_numpy(g1.permutation(20))
    assert sorted(perm.tolist()) == list(range(20))


def test_numpy_arrays_do_not_belong_to_strict():
    strict = xpnet.device("array_api_strict")
    assert not strict.owns(np.ones(3))
    assert xpnet.device("cpu").owns(np.ones(3))
