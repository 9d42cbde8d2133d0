from .. import _fake


def get_device_id():
    return _fake.current()


class Device:
    """cupy.cuda.Device as in CuPy 13.6's device.pyx: the device to restore is kept on a
    thread-local stack; __exit__ always sets it back."""

    def __init__(self, device=None):
        self.id = _fake.current() if device is None else int(device)

    def __int__(self):
        return self.id

    def __index__(self):
        return self.id

    def __enter__(self):
        _fake._stack().append(_fake.current())
        if self.id != _fake.current():
            _fake._set_current(self.id)
        return self

    def __exit__(self, *args):
        _fake._set_current(_fake._stack().pop())

    def use(self):
        _fake._set_current(self.id)
        return self

    def synchronize(self):
        _fake._declare_sync("Device.synchronize")
        _fake.STATS["device_sync"] += 1

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and self.id == other.id

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(("cuda", self.id))

    @property
    def compute_capability(self):
        return "90"

    @property
    def pci_bus_id(self):
        return _fake.pci_bus_id(self.id)

    @property
    def mem_info(self):
        return (_fake.TOTAL_MEM - _fake._POOL_USED.get(self.id, 0), _fake.TOTAL_MEM)
