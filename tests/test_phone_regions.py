"""The phone field's formatting data: the committed file is what phonenumbers' metadata gives."""

from __future__ import annotations

import json
import re
from io import StringIO

import phonenumbers
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from verification.forms import parse_phone_number, picker_regions
from verification.phone_regions import PATH, phone_regions, phone_regions_json


def test_the_committed_file_is_what_the_generator_writes():
    assert PATH.read_text() == phone_regions_json(), (
        f"{PATH.name} is out of date (phonenumbers {phonenumbers.__version__}): run "
        "`python manage.py phone_regions` and commit the file"
    )


def test_the_command_checks_and_writes_the_file(tmp_path, monkeypatch):
    out = StringIO()
    call_command("phone_regions", check=True, stdout=out)
    assert "up to date" in out.getvalue()
    stale = tmp_path / "phone_regions.json"
    stale.write_text("{}")
    monkeypatch.setattr("verification.management.commands.phone_regions.PATH", stale)
    with pytest.raises(CommandError, match="out of date"):
        call_command("phone_regions", check=True, stdout=StringIO())
    call_command("phone_regions", stdout=StringIO())
    assert stale.read_text() == phone_regions_json()


def test_the_data_covers_every_region_compactly():
    data = json.loads(PATH.read_text())
    assert set(data["regions"]) == phonenumbers.SUPPORTED_REGIONS
    assert len(PATH.read_bytes()) < 60_000
    code, prefix, lengths, example, *rest = data["regions"]["RU"]
    assert (code, prefix, lengths, example) == (7, "8", [10], "9123456789")
    # Russia's mobile format, with how the first group is written after the national prefix.
    assert ["### ###-##-##", ["[349]|8(?:[02-7]|1[1-8])"], "8 ($)"] in rest[1]
    # Kazakhstan shares +7 and Russia's formats; its numbers start with 7.
    assert data["regions"]["KZ"] == [7, "8", [10], "7710009998", "7"]


@pytest.mark.parametrize("region", sorted(phonenumbers.SUPPORTED_REGIONS))
def test_every_example_is_a_valid_mobile_number_the_server_accepts(region, settings):
    """The picker's placeholder shows each region's example; composed, it must be accepted."""
    settings.VERIFICATION = {"EMBEDDED_SANDBOX": False}
    code, _prefix, lengths, example, *_rest = phone_regions()["regions"][region]
    assert len(example) in lengths
    e164, _international, parsed_region = parse_phone_number(f"+{code}{example}")
    assert e164 == f"+{code}{example}"
    # A few regions share their main region's example (Åland's is Finland's).
    assert parsed_region in (region, phonenumbers.region_code_for_country_code(code))


def test_the_picker_offers_the_regions_a_number_may_belong_to(settings):
    settings.VERIFICATION = {}
    assert picker_regions() == ("", "")
    settings.VERIFICATION = {"DEFAULT_REGION": "gb", "ALLOWED_REGIONS": ["gb", "DE", "FR"]}
    assert picker_regions() == ("GB", "GB DE FR")
    settings.VERIFICATION = {"ALLOWED_REGIONS": ["GB", "DE"], "DENIED_REGIONS": ["de"]}
    assert picker_regions() == ("", "GB")
    settings.VERIFICATION = {"DENIED_REGIONS": ["RU"]}
    offered = picker_regions()[1].split()
    assert "RU" not in offered
    assert len(offered) == len(phonenumbers.SUPPORTED_REGIONS) - 1


@pytest.mark.django_db
def test_the_page_gives_the_picker_its_data_choices_and_labels(client, settings):
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "DEFAULT_REGION": "de",
        "ALLOWED_REGIONS": ["DE", "AT"],
    }
    html = client.get(reverse("verification:verify"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    main = re.search(r'<main class="verification"[^>]*>', html)
    assert main, html
    assert 'data-phone-regions="/static/verification/phone_regions.json"' in main.group(0)
    assert 'data-phone-region="DE"' in main.group(0)
    assert 'data-phone-offered="DE AT"' in main.group(0)
    assert '<label for="phone-country">Страна</label>' in html
    assert '<option value="">Другая: введите + и код страны</option>' in html
    assert "Выберите страну и введите номер." in html
