"""The ``grok_mlflow`` logger: messages reach the stderr of the moment as they are written, a
level quiets the notes, and a user's own handler sees them."""

from __future__ import annotations

import logging

from grok_mlflow.console import logger


def test_a_message_is_written_as_itself_to_the_current_stderr(capsys):
    logger.warning("grok-mlflow: warning: checkpoint not written (OSError); retrying")
    logger.info("grok-mlflow: the model is logged pickled")
    err = capsys.readouterr().err
    assert err == ("grok-mlflow: warning: checkpoint not written (OSError); retrying\n"
                   "grok-mlflow: the model is logged pickled\n")
    assert logging.getLogger("grok_mlflow") is logger and not logger.propagate


def test_a_level_quiets_the_notes_and_a_users_handler_sees_every_message(capsys):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.WARNING)
    try:
        logger.info("a note")
        logger.warning("grok-mlflow: warning: a warning")
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    assert capsys.readouterr().err == "grok-mlflow: warning: a warning\n"
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "grok-mlflow: warning: a warning")]
