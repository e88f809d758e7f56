"""``synthct`` entry point. Each subcommand lives in its own module exposing ``register(subparsers)``; the module
sets ``func`` on its parser. Heavy imports happen inside the command functions, so ``synthct --help`` is fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import warnings
from collections.abc import Sequence

from synthct import __version__
from synthct.openmp import prefer_passive_openmp

#: Subcommand modules under ``synthct.cli``, in help order.
SUBCOMMANDS: tuple[str, ...] = ("demo", "predict", "export", "route", "evaluate", "dose", "convert", "plan",
                                  "preprocess", "train", "finetune", "extractor")

LOG = logging.getLogger("synthct")
#: Exit status after Ctrl-C: the shell's 128 + SIGINT, as process.py.
INTERRUPTED_EXIT = 128 + signal.SIGINT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthct", description="Synthetic CT from MRI / CBCT (SynthRAD2025).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"synthct {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"synthct.cli.{name}")
        except ModuleNotFoundError as exc:  # a missing subcommand module must not break the others, nor pass unseen
            if exc.name != f"synthct.cli.{name}":
                raise
            warnings.warn(f"synthct: subcommand {name!r} is unavailable: {exc}", RuntimeWarning, stacklevel=2)
            continue
        module.register(sub)
    return parser


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,  # the entry point owns logging (also under pytest, which pre-installs handlers)
    )


def main(argv: Sequence[str] | None = None) -> int:
    prefer_passive_openmp()  # before any subcommand imports torch (synthct.openmp says why)
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        LOG.error("%s", exc)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: one line and the shell's 128 + SIGINT, as process.py
        LOG.error("synthct %s: stopped by SIGINT (exit %d)", args.command, INTERRUPTED_EXIT)
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
