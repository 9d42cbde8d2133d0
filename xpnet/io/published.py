"""The published SHA-256 digests of MNIST, Fashion-MNIST and KMNIST, and what a copy's files
are by them. A copy that matches one dataset file for file is that dataset, verified without a
``SHA256SUMS``; files from two datasets, or train and test swapped, are refused (nothing else
catches them: the shapes agree); files that match nothing are named, so "unverified" is never
silent. Digests are of the files as distributed (gzipped; MNIST's uncompressed files too):
recompressing a file changes its digest, not its data -- the message says so.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import DatasetError

__all__ = ["PUBLISHED_SHA256", "identify"]

# dataset -> file stem -> its digests. MNIST: the .gz files and their uncompressed contents.
# Fashion-MNIST: Zalando's current files (listed beside the MD5s its README gives) and an earlier
# packaging listed by batchup (2017). KMNIST: ROIS-CODH's files.
PUBLISHED_SHA256 = {
    "MNIST": {
        "train-images-idx3-ubyte": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                   "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    "Fashion-MNIST": {
        "train-images-idx3-ubyte": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                                    "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"),
        "train-labels-idx1-ubyte": ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                    "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"),
        "t10k-images-idx3-ubyte": ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                                   "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"),
        "t10k-labels-idx1-ubyte": ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                                   "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"),
    },
    "KMNIST": {
        "train-images-idx3-ubyte": ("51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",),
        "train-labels-idx1-ubyte": ("e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",),
        "t10k-images-idx3-ubyte": ("edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",),
        "t10k-labels-idx1-ubyte": ("20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",),
    },
}
_BY_DIGEST = {d: (name, stem) for name, files in PUBLISHED_SHA256.items()
              for stem, digests in files.items() for d in digests}
KNOWN = ", ".join(PUBLISHED_SHA256)


_KEYS = {"train-images-idx3-ubyte": "train_img", "train-labels-idx1-ubyte": "train_label",
         "t10k-images-idx3-ubyte": "test_img", "t10k-labels-idx1-ubyte": "test_label"}


def _what(key: str) -> str:
    return f"{'training' if key.startswith('train') else 'test'} {'images' if key.endswith('img') else 'labels'}"


def identify(stored: dict) -> tuple[str | None, str | None]:
    """(the dataset every file is, or None; else a sentence naming the files that match no
    published digest, or None when the copy is one dataset). ``stored``: ``{key: (file, SHA-256
    as stored)}`` from ``read_dataset`` (keys ``train_img``, ``train_label``, ``test_img``, ``test_label``).
    Raises ``DatasetError`` for files of two datasets, or a file standing in for another."""
    known = {key: _BY_DIGEST.get(digest) for key, (_, digest) in stored.items()}
    for key, hit in known.items():
        if hit is not None and _KEYS[hit[1]] != key:
            raise DatasetError(f"{stored[key][0]} is {hit[0]}'s {hit[1]} (its {_what(_KEYS[hit[1]])}), not its "
                               f"{_what(key)}: the files are swapped or misnamed; rename them")
    names = {hit[0] for hit in known.values() if hit is not None}
    if len(names) > 1:
        which = ", ".join(f"{Path(stored[k][0]).name} is {hit[0]}'s" for k, hit in known.items() if hit)
        raise DatasetError(f"the files in {Path(stored[next(iter(stored))][0]).parent} are from different datasets "
                           f"({which}); put one dataset's four files there")
    unknown = [Path(stored[k][0]).name for k, hit in known.items() if hit is None]
    if not unknown:
        return names.pop(), None
    if names:
        return None, (f"{', '.join(unknown)} match{'es' if len(unknown) == 1 else ''} none of {next(iter(names))}'s "
                      f"published digests while the other files are {next(iter(names))}'s: "
                      f"{'it is' if len(unknown) == 1 else 'they are'} modified, damaged or recompressed")
    return None, f"the files match none of the published digests xpnet knows ({KNOWN})"
