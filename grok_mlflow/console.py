"""The ``grok_mlflow`` logger: the one-line notes, warnings and errors a run shows on stderr.

Every message the package writes for a user goes through ``logger`` (``logging.getLogger(
"grok_mlflow")``), as itself (no level or time prefix: the lines read as before), to whatever
``sys.stderr`` is when it is written (a terminal, a notebook, pytest's capture). A user quiets
the notes with ``logging.getLogger("grok_mlflow").setLevel(logging.WARNING)``, or routes them
elsewhere by adding a handler of their own (then this one steps aside: ``propagate`` stays off,
as MLflow's own logger does).

Example:
    from grok_mlflow.console import logger
    logger.warning("grok-mlflow: warning: checkpoint not written (OSError); training goes on")
"""

from __future__ import annotations

import logging
import sys

__all__ = ["logger"]


class _Stderr(logging.StreamHandler):
    """A handler writing to the ``sys.stderr`` of the moment, the message alone."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


logger = logging.getLogger("grok_mlflow")
if not logger.handlers:
    logger.addHandler(_Stderr())
    logger.setLevel(logging.INFO)
    logger.propagate = False
