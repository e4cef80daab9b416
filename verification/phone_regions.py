"""The phone number field's formatting data, generated from ``phonenumbers``' metadata.

The visitor page's country picker (``static/verification/phone_input.js``) formats numbers as they
are typed from this data, which it fetches from the static file
``static/verification/phone_regions.json``: regenerate that file with
``manage.py phone_regions`` after upgrading ``phonenumbers`` (a test compares the two).

The file holds ``{"version": <phonenumbers version>, "regions": {REGION: entry}}``; each entry is
``[calling code, national prefix, lengths, example, leading digits, formats]``, trailing empty
fields left out. The national prefix is a pattern of what may be dialled before a national
number (Belarus's ``0|80?``); the lengths and the example are those of mobile numbers, the
numbers visitors verify; the leading digits tell a region from the others that share its calling
code.

The first region of each calling code is its main one, and only main regions carry formats (the
others use their main region's, as ``phonenumbers`` does). A format is
``[template, leading-digit patterns, national prefix rule]``:

- the template is the format with ``#`` for each digit, ``~`` for each optional one (a group of
  ``\\d{4,5}`` is ``####~``) and everything else written as is;
- leading-digit pattern *i* must match the start of a national number of *i + 3* digits or more;
- the rule, when present, is how the first group is written after the national prefix, with ``$``
  for the group (``8 ($)``): a number in that format is dialled with the prefix at home. Where a
  region has a prefix but no rule at all (the US), every format gets the rule ``<prefix> `` (no
  ``$``), written before the whole number.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

PATH = Path(__file__).resolve().parent / "static" / "verification" / "phone_regions.json"

_GROUP = re.compile(r"\(\\d(?:\{(\d+)(?:,(\d+))?\})?\)")


def _template(pattern: str | None, format: str | None) -> str:
    """``(\\d{3})(\\d{2,3})`` with ``\\1-\\2`` as ``###-##~``."""
    if pattern is None or format is None:
        raise ValueError("a number format without a pattern or a format")
    groups = []
    for match in _GROUP.finditer(pattern):
        low = int(match.group(1) or 1)
        high = int(match.group(2) or low)
        groups.append("#" * low + "~" * (high - low))
    if _GROUP.sub("", pattern):
        raise ValueError(f"unexpected number pattern {pattern!r}")
    if re.search(r"\\\d\\\d|[#~]", format):
        raise ValueError(f"unexpected number format {format!r}")
    return re.sub(r"\\(\d)", lambda match: groups[int(match.group(1)) - 1], format)


def _rule(rule: str | None) -> str:
    if not rule:
        return ""
    if rule.count("\\1") != 1 or "$" in rule:
        raise ValueError(f"unexpected national prefix rule {rule!r}")
    return rule.replace("\\1", "$")


def _trimmed(fields: list[Any]) -> list[Any]:
    """The fields without the empty ones at the end."""
    while fields and not fields[-1]:
        fields = fields[:-1]
    return fields


def _entry(region: str, main: bool) -> list[Any]:
    metadata = PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    example = next(
        (
            desc.example_number
            for desc in (metadata.mobile, metadata.fixed_line, metadata.general_desc)
            if desc is not None and desc.example_number
        ),
        "",
    )
    rules = [_rule(each.national_prefix_formatting_rule) for each in metadata.number_format]
    if metadata.national_prefix and not any(rules):
        # No format says how the prefix is written (as in the US), yet it is dialled before all.
        rules = [metadata.national_prefix + " "] * len(rules)
    prefix = metadata.national_prefix or ""
    if (
        prefix
        and metadata.national_prefix_for_parsing
        and not metadata.national_prefix_transform_rule
    ):
        # What is dialled before a national number: more than the prefix in some regions (a
        # carrier's code, Belarus's 80).
        prefix = metadata.national_prefix_for_parsing
    formats = [
        _trimmed(
            [
                _template(number_format.pattern, number_format.format),
                list(number_format.leading_digits_pattern),
                rule,
            ]
        )
        for number_format, rule in zip(metadata.number_format, rules, strict=True)
    ]
    lengths = next(
        desc.possible_length
        for desc in (metadata.mobile, metadata.general_desc)
        if desc is not None and desc.possible_length
    )
    return _trimmed(
        [
            metadata.country_code,
            prefix,
            sorted(lengths),
            example,
            "" if main else metadata.leading_digits or "",
            formats if main else [],
        ]
    )


def phone_regions() -> dict[str, Any]:
    """The data of ``phone_regions.json``: every region ``phonenumbers`` supports."""
    regions: dict[str, Any] = {}
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        for index, region in enumerate(COUNTRY_CODE_TO_REGION_CODE[code]):
            if region in phonenumbers.SUPPORTED_REGIONS:
                regions[region] = _entry(region, index == 0)
    return {"version": phonenumbers.__version__, "regions": regions}


def phone_regions_json() -> str:
    """The text of ``phone_regions.json``: compact, one region a line, so diffs stay readable."""
    data = phone_regions()
    lines = [
        json.dumps(region) + ":" + json.dumps(entry, separators=(",", ":"))
        for region, entry in data["regions"].items()
    ]
    return (
        '{"version":'
        + json.dumps(data["version"])
        + ',"regions":{\n'
        + ",\n".join(lines)
        + "\n}}\n"
    )
