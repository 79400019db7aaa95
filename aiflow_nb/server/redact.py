"""Keep tokens out of the service's log: requests are logged by path (never the query), and a
filter replaces any token that still reaches a log record, as given or percent-encoded, and the
value of any ``token=`` query argument or ``Authorization: token`` header it finds.

>>> import logging
>>> secrets = Redactor()
>>> secrets.add("s3cret")
>>> record = logging.LogRecord("x", logging.INFO, "", 0, "token %s in %s", ("s3cret", "/a?t=%73%33cret"), None)
>>> secrets.filter(record) and record.getMessage()
'token <token> in /a?t=<token>'
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from typing import Any

import tornado.httputil
import tornado.web

access_log = logging.getLogger("tornado.access")


class Redactor(logging.Filter):
    """A logging filter that replaces the secrets it was given, in messages and tracebacks."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self._formatter = logging.Formatter()

    def add(self, secret: str | None) -> None:
        if secret and secret not in self.secrets:
            self.secrets.append(secret)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
        if "%" in text or "+" in text:
            text = _ENCODED.sub(self._clean_encoded, text)
        return _GIVEN.sub(r"\1<token>", text)

    def _clean_encoded(self, match: re.Match[str]) -> str:
        """A run of URL text that holds a secret once decoded (however many times it was encoded)."""
        run = decoded = match[0]
        for _ in range(4):
            decoded, before = urllib.parse.unquote_plus(decoded), decoded
            if any(secret in decoded for secret in self.secrets):
                return "<token>"
            if decoded == before:
                break
        return run

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True


#: A run of URL text: unreserved characters and percent escapes.
_ENCODED = re.compile(r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9_.~+\-])+")
#: A token as a query argument (its name percent-encoded or not) or in an Authorization header.
_GIVEN = re.compile(
    r"((?:[?&;]|%3F|%26)(?:t|%74)(?:o|%6F)(?:k|%6B)(?:e|%65)(?:n|%6E)(?:=|%3D)"
    r"|authorization['\"]?\s*[:=,]\s*['\"]?token\s+)[^&\s'\",)]+",
    re.IGNORECASE,
)


#: The one redactor of this process: the service adds its tokens once it has them.
REDACTOR = Redactor()


def request_summary(request: tornado.httputil.HTTPServerRequest) -> str:
    """Method, path (no query: ``?token=`` may be in it) and client address."""
    return f"{request.method} {request.path} ({request.remote_ip})"


def log_access(status: int, request: tornado.httputil.HTTPServerRequest) -> None:
    """tornado's access log line, by path only."""
    if status < 400:
        level = logging.DEBUG
    elif status < 500:
        level = logging.WARNING
    else:
        level = logging.ERROR
    if access_log.isEnabledFor(level):  # thousands of requests a second: format only what is written
        millis = 1000.0 * request.request_time()
        access_log.log(level, "%d %s %.2fms", status, request_summary(request), millis)


def log_request(handler: tornado.web.RequestHandler) -> None:
    log_access(handler.get_status(), handler.request)


def install(handler: logging.Handler) -> None:
    handler.addFilter(REDACTOR)


def settings() -> dict[str, Any]:
    """The Application settings that keep tokens out of tornado's own log lines."""
    return {"log_function": log_request}
