"""xpnet's test suite, a package so that its helpers import as ``tests.x`` (or relatively) and the
book's code has one home, ``tests.book``, which the benchmark imports too. One file per module of
the package (``test_<module>.py``); the book's contract in ``tests/book/``."""
