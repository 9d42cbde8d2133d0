"""The two ways to call ``Trainer``: xpnet's keywords, and the book's ``common/trainer.py``.

The book's call is ``Trainer(network, x_train, t_train, x_test, t_test, epochs=20,
mini_batch_size=100, optimizer='SGD', optimizer_param={'lr': 0.01},
evaluate_sample_num_per_epoch=None, verbose=True)``, its arguments after the data by position or
by keyword. A call that gives any of the book's own arguments is in the book's form; one that
gives none is in xpnet's (``Trainer(net, x, t, xt, tt)`` alone keeps xpnet's defaults). Giving
arguments of both forms is refused, naming them: each form has its own word for the batch size,
the length and the learning rate, and a mix would leave one of them unread.
"""

from __future__ import annotations

from .optimizers import get_optimizer, optimizer_class
from .validation import non_negative_int, positive_int

__all__ = ["Default", "BOOK_ORDER", "BOOK_ONLY", "XPNET_ONLY", "split_forms", "book_schedule", "book_optimizer",
           "optimizer_of", "wrong_form"]

# the book's arguments after t_test, in its order (its optimizer is xpnet's too)
BOOK_ORDER = ("epochs", "mini_batch_size", "optimizer", "optimizer_param", "evaluate_sample_num_per_epoch", "verbose")
BOOK_ONLY = ("epochs", "mini_batch_size", "optimizer_param", "evaluate_sample_num_per_epoch", "verbose")
# xpnet's settings that say what one of the book's says, or that the book's loop has no use for;
# seed, eval_batch_size and optimizer belong to both forms
XPNET_ONLY = ("lr", "batch_size", "iters", "eval_interval", "record_loss", "report_every", "final_eval", "progress",
              "log", "communicator")


class Default:
    """A keyword's default in the signature, told apart from the same value passed."""

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return "print" if self.value is print else repr(self.value)


def split_forms(positional: tuple, keywords: dict) -> tuple[bool, dict, set]:
    """(whether the call is in the book's form, every keyword's value with defaults filled in,
    the names that were passed).

    ``positional``: what came after ``t_test`` by position (the book's order); ``keywords``:
    every keyword of the signature, a ``Default`` where not passed."""
    if len(positional) > len(BOOK_ORDER):
        raise TypeError(f"Trainer takes at most {5 + len(BOOK_ORDER)} arguments by position (the book's network, "
                        f"x_train, t_train, x_test, t_test, {', '.join(BOOK_ORDER)}); got {5 + len(positional)}")
    keywords = dict(keywords)
    for name, value in zip(BOOK_ORDER, positional):
        if not isinstance(keywords[name], Default):
            raise TypeError(f"Trainer got {name} twice: by position (the book's order: {', '.join(BOOK_ORDER)}) "
                            f"and by keyword")
        keywords[name] = value
    given = [k for k, v in keywords.items() if not isinstance(v, Default)]
    book, xpnet = [k for k in given if k in BOOK_ONLY], [k for k in given if k in XPNET_ONLY]
    if book and xpnet:
        raise TypeError(f"Trainer got {', '.join(book)} (the book's form) and {', '.join(xpnet)} (xpnet's form): "
                        f"use one form -- the book's {', '.join(BOOK_ONLY)}, or xpnet's {', '.join(XPNET_ONLY)}; "
                        f"optimizer, seed and eval_batch_size go with either")
    return bool(book), {k: v.value if isinstance(v, Default) else v for k, v in keywords.items()}, set(given)


def book_schedule(train_size: int, mini_batch_size, epochs) -> tuple[float, int, int]:
    """The book's arithmetic: ``(iter_per_epoch, max_iter, period)``, where the book's epoch check
    ``current_iter % iter_per_epoch == 0`` holds exactly at the multiples of ``period``.

    ``iter_per_epoch`` is the book's float ``max(train_size / mini_batch_size, 1)``, and ``%`` on
    floats is exact: the check holds where ``current_iter`` is a whole multiple of the float's
    exact value ``p / 2**e``, i.e. at the multiples of its numerator ``p`` (600.0: every 600
    steps; 2.5: every 5; 10/3 rounded: only at step 0, as in the book)."""
    mini_batch_size = positive_int("mini_batch_size", mini_batch_size)
    epochs = non_negative_int("epochs", epochs)
    iter_per_epoch = max(train_size / mini_batch_size, 1)
    return iter_per_epoch, int(epochs * iter_per_epoch), float(iter_per_epoch).as_integer_ratio()[0]


def book_optimizer(optimizer, param, param_given: bool = True):
    """The book's ``optimizer_class_dict[optimizer.lower()](**optimizer_param)``, or an optimizer
    object as it is (xpnet's form allows one; then ``optimizer_param`` must not be given)."""
    if not isinstance(optimizer, str):
        if param_given:
            raise TypeError("optimizer_param was given with an optimizer object: set its settings on the object, "
                            "or name it (optimizer='Momentum', optimizer_param={'lr': 0.01, 'momentum': 0.9})")
        return get_optimizer(optimizer)
    cls = optimizer_class(optimizer)
    if not isinstance(param, dict):
        raise TypeError(f"optimizer_param must be a dict of {cls.__name__}'s settings ({', '.join(cls.settings)}), "
                        f"got {type(param).__name__}")
    unknown = sorted(set(param) - set(cls.settings))
    if unknown:
        raise TypeError(f"optimizer_param: {cls.__name__} takes {', '.join(cls.settings)}, not {', '.join(unknown)}")
    return cls(**param)


def optimizer_of(book: bool, values: dict, given: set):
    """The optimizer a call asks for: the book's way, or xpnet's (``lr`` defaults to the book's
    protocol, 0.1, for SGD; other optimizers keep their own defaults)."""
    if book:
        return book_optimizer(values["optimizer"], values["optimizer_param"], "optimizer_param" in given)
    optimizer, lr = values["optimizer"], values["lr"]
    if not isinstance(optimizer, str) and lr is not None:
        raise ValueError("lr was given with an optimizer object: set the rate on the optimizer itself")
    if lr is None and isinstance(optimizer, str) and optimizer.lower() == "sgd":
        lr = 0.1
    return get_optimizer(optimizer, lr)


def wrong_form(method: str, book_method: bool) -> TypeError:
    """The error for calling ``method`` of one form on a Trainer made in the other."""
    if book_method:
        return TypeError(f"{method}() is the book's loop, for a Trainer made in the book's form: Trainer(network, "
                         f"x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100, optimizer='SGD', "
                         f"optimizer_param={{'lr': 0.01}}); this one was made with none of the book's arguments "
                         f"(xpnet's form): call fit()")
    return TypeError(f"{method}() belongs to xpnet's form (iters=, batch_size=, lr=, ...); this Trainer was made in "
                     f"the book's (epochs=, mini_batch_size=, ...): call train(), and save the net with "
                     f"xpnet.save_net(trainer.network, path)")
