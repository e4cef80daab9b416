"""The docs agree with the code: the README's settings and the protocol's error codes."""

from __future__ import annotations

import re
from pathlib import Path

from verification.app_settings import SETTINGS, settings_reference
from verification.errors import MESSAGES, ErrorCode

ROOT = Path(__file__).resolve().parent.parent


def section(text: str, start: str, end: str) -> str:
    assert start in text and end in text, f"{start!r} … {end!r} is missing"
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def test_readme_lists_every_setting_as_the_table_describes_it():
    readme = (ROOT / "README.md").read_text()
    listed = section(readme, "<!-- settings: start -->", "<!-- settings: end -->")
    assert listed == settings_reference(), (
        "README's settings section is out of date; replace it with the output of "
        '`python -c "from verification.app_settings import settings_reference as r; print(r())"`'
    )
    names = re.findall(r"^- `([A-Z_]+)`", listed, flags=re.MULTILINE)
    assert names == [setting.name for setting in SETTINGS]


def test_every_setting_has_a_default_of_its_type_and_help():
    for setting in SETTINGS:
        assert isinstance(setting.default, setting.type), setting.name
        assert setting.help.strip(), setting.name


def test_protocol_documents_every_error_code_and_no_other():
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    errors = section(protocol, "## Errors", "\n## ")
    documented = re.findall(r"^\| `([A-Z_]+)`", errors, flags=re.MULTILINE)
    assert sorted(documented) == sorted(code.value for code in ErrorCode)
    assert len(documented) == len(set(documented)), "a code has two rows"


def test_every_error_code_has_a_message():
    assert set(MESSAGES) == set(ErrorCode)


def test_embedding_guide_lists_every_system_check():
    checks = (ROOT / "verification" / "checks.py").read_text()
    ids = set(re.findall(r'id="(verification\.[EW]\d{3})"', checks))
    guide = (ROOT / "docs" / "embedding.md").read_text()
    listed = set(re.findall(r"^\| `(verification\.[EW]\d{3})`", guide, flags=re.MULTILINE))
    assert listed == ids
