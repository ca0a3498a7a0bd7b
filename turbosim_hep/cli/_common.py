"""Flags that several commands share, declared once so that every command spells them
alike.

``--no-progress`` turns the progress bars off in every command (``--quiet``, the older
spelling of train, simulate and unfold, is the same flag); ``--jobs`` is the number of
worker processes wherever a command has them (generate, simulate, unfold and validate,
whose older ``--workers`` is the same flag); ``--layout`` is the final state.
"""

from __future__ import annotations

import argparse


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` (alias ``--quiet``): ``args.progress`` is `False` when given."""
    parser.add_argument(
        "--no-progress", "--quiet", dest="progress", action="store_false",
        help="no progress bars",
    )


def add_layout_flag(
    parser: argparse.ArgumentParser, *, default: str | None = "ejets", default_text: str = ""
) -> None:
    """``--layout NAME|FILE``: the final state (``args.layout``, resolved by the command).

    ``default`` None: the command takes the layout from elsewhere (the model, a config
    file), which ``default_text`` says.
    """
    from turbosim_hep.layout import BUILTIN_LAYOUTS

    parser.add_argument(
        "--layout", default=default, metavar="NAME|FILE",
        help=f"the final state: {', '.join(BUILTIN_LAYOUTS)} or a .toml layout file "
        f"(docs/layouts.md; default {default_text or 'ejets, the paper'})",
    )
