"""The CLI's tables show control characters of keys, values and errors escaped, never raw (issue 26, item 7)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunningService
from tests.test_cli import cli

TITLE = "\x1b]0;owned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J\x1b[H"  # clears the screen
FORGED = "\n      99  default/forged  a line that was never an event"


def test_event_list_escapes_terminal_controls(service: RunningService, home: Path) -> None:
    client = service.client()
    client.send_event("key" + TITLE, "value" + CLEAR + FORGED + "\r\u202egnp.exe")
    shown = cli(home, "event", "list").stdout
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in shown
    lines = shown.splitlines()
    assert len(lines) == 2, lines  # the header and the one event: no forged line
    assert "key\\x1b]0;owned\\x07" in lines[1]
    assert "value\\x1b[2J\\x1b[H\\n      99  default/forged" in lines[1]
    assert "\\r\\u202egnp.exe" in lines[1]
