"""Flags that several commands share, declared once so that every command spells them
alike.

``--no-progress`` turns the progress bars off in every command (``--quiet``, the older
spelling of train, simulate and unfold, is the same flag); ``--jobs`` is the number of
worker processes wherever a command has them (generate, simulate, unfold and validate,
whose older ``--workers`` is the same flag).
"""

from __future__ import annotations

import argparse


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` (alias ``--quiet``): ``args.progress`` is `False` when given."""
    parser.add_argument(
        "--no-progress", "--quiet", dest="progress", action="store_false",
        help="no progress bars",
    )
