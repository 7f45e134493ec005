"""What a refused command prints, checked the same way by every CLI test."""

from __future__ import annotations


def read_error_line(capsys, rc: int) -> str:
    """The one line a refused command prints: exit code 2, ``reviewsense: error: …``, no traceback."""
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("reviewsense: error: ")
    return lines[0]
