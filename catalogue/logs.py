"""Logging setup: plain text or one JSON object per line. Records carry ids and timings only."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

#: structured fields a record may carry (``extra=``); nothing else is emitted, so a payload
#: passed by mistake never reaches the log
FIELDS = ("request_id", "method", "route", "path", "status", "duration_ms", "role",
          "run_id", "source_id", "organisation_id", "kind", "counts")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "opensearch", "elastic_transport", "psycopg.pool", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
