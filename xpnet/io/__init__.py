"""Host file work, every file read as hostile: refused from its declared sizes before it costs
memory, with an error that names the file, the fault and the fix.

- ``npz``: the ``.npz`` reader of checkpoints (zip directory and ``.npy`` headers checked first);
- ``checkpoint_format``: what a checkpoint holds, and the checks of its JSON record;
- ``npy``: bounded ``.npy`` headers, and images from an ``.npy`` (``xpnet predict --images``);
- ``idx``: IDX files (MNIST's format), plain or gzipped, decoded in bounded chunks, SHA-256 checked;
- ``book_pickle``: the book's pickled parameters (``params.pkl``), read without running code from them.

NumPy is used here, as in ``checkpoint`` and ``datasets``: files are read on the host, before
any device.
"""
