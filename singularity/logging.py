"""Log formatting: one event per line with the ids that travel with a message."""
import logging

# Attributes every LogRecord has; anything else came from ``extra`` and is printed as key=value.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class EventFormatter(logging.Formatter):
    """Format a record as ``time level logger message key=value ...`` with the ``extra`` fields."""

    def __init__(self):
        super().__init__(fmt="%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{key}={value!r}" if isinstance(value, str) and " " in value else f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
        ]
        if not fields:
            return line
        head, newline, traceback = line.partition("\n")
        return f"{head} {' '.join(fields)}{newline}{traceback}"
