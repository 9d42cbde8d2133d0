"""``array_api_strict``: the reference namespace, proving the code uses only the standard."""

from __future__ import annotations

from ..exceptions import DeviceUnavailableError
from .base import Device


class StrictDevice(Device):
    """``array_api_strict``: the reference namespace; the base class's standard-only paths
    (``device=``, DLPack, host draws) are all it needs, which is the point of it."""

    __slots__ = ()
    kind = "array_api_strict"

    def __init__(self):
        try:
            import array_api_strict as xp
        except ImportError as e:
            raise DeviceUnavailableError(
                "device 'array_api_strict' needs the package array-api-strict: "
                "pip install 'xpnet[test]'"
            ) from e
        a = xp.asarray(0.0)
        super().__init__("array_api_strict", xp, native=a.device, array_type=type(a))
