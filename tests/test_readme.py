"""The README's Python examples marked ``<!-- run by tests/test_readme.py -->`` run as written,
in order, each in a fresh process in one folder (so one can load what an earlier one saved),
and print what their comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- run by tests/test_readme.py -->"


def _examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(re.escape(MARK) + r"\s*```python\n(.*?)```", text, flags=re.S)


def _claims(code: str) -> list[str]:
    """The outputs the example's comments promise, in order: ``print(...)  # [0.71 0.74 0.73]``."""
    claims = []
    for line in code.splitlines():
        match = re.match(r"print\(.*\)\s+# (\[.*?\]|\{.*?\}|\(.*?\))(?::|$)", line.strip())
        if match:
            claims.append(match.group(1))
    return claims


def test_there_are_examples_to_run():
    assert _examples(), f"no block marked {MARK!r} in the README"


def test_readme_examples_run_in_order_and_print_what_they_say(tmp_path):
    for index, code in enumerate(_examples()):
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600,
                                env={"REVIEWSENSE_QUIET": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert result.returncode == 0, f"example {index + 1}: {result.stderr}"
        printed = [" ".join(line.split()) for line in result.stdout.splitlines()]
        joined = " ".join(printed)
        for claim in _claims(code):
            assert " ".join(claim.split()) in joined, \
                f"example {index + 1}: the README says {claim}, it printed:\n{result.stdout}"
