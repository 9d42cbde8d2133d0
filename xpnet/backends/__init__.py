"""One file per backend (chainer's ``backends/``): ``base`` (the standard's own paths, which
array-api-strict needs nothing beyond), ``cpu`` (NumPy), ``strict``, ``pytorch``, ``cuda`` (CuPy).
Choose among them with ``xpnet.device(spec)`` (``xpnet/backend.py``); the BLAS thread policy the
CPU backends share is ``xpnet/threads.py``."""
