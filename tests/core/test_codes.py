"""The error and close code tables in docs/protocol.md are the ones the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from hubbub.core.codes import CloseCode, ErrorCode

PROTOCOL_DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def test_every_error_code_is_documented_and_nothing_else() -> None:
    section = PROTOCOL_DOC.split("### Errors", 1)[1].split("###", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    assert documented == {code.value for code in ErrorCode}


def test_every_close_code_is_documented() -> None:
    section = PROTOCOL_DOC.split("### Close codes", 1)[1]
    documented = {int(n) for n in re.findall(r"^\| (\d{4}) \|", section, re.MULTILINE)}
    assert documented == {int(code) for code in CloseCode}


def test_reconnect_advice_matches_the_doc() -> None:
    section = PROTOCOL_DOC.split("### Close codes", 1)[1]
    for line in section.splitlines():
        match = re.match(r"^\| (\d{4}) \|.*\| (yes|no)[^|]*\|$", line)
        if match:
            assert CloseCode(int(match[1])).should_reconnect == (match[2] == "yes"), line
