from .. import _fake

CUDARuntimeError = _fake.CUDARuntimeError
is_hip = False
cudaDevAttrMultiProcessorCount = 16
errorInvalidValue = 1


def getDeviceCount():
    return _fake.N_GPUS


def getDevice():
    return _fake.current()


def setDevice(i):
    _fake._set_current(int(i))


def deviceSynchronize():
    _fake._declare_sync("runtime.deviceSynchronize")


def deviceGetPCIBusId(device):
    return _fake.pci_bus_id(int(device))


def memGetInfo():
    d = _fake.current()
    _fake._context(d)
    return (_fake.TOTAL_MEM - _fake._POOL_USED.get(d, 0), _fake.TOTAL_MEM)


def runtimeGetVersion():
    return 12080


def driverGetVersion():
    return 12080


def getDeviceProperties(i):
    if not 0 <= i < _fake.N_GPUS:
        raise CUDARuntimeError(101, "cudaErrorInvalidDevice: invalid device ordinal")
    return {"name": b"FAKE H200 (numpy)", "totalGlobalMem": _fake.TOTAL_MEM, "multiProcessorCount": 132}


def deviceGetAttribute(attr, device):
    return 132
