"""Sessions only when needed: loading the page writes none; the page's first act asks the
session endpoint (CSRF-protected, limited per address) for one, and its socket acts for it."""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import translation

from verification.gateway.fake import FakeGateway
from verification.owners import OWNER_SESSION_KEY

PHONE = "+9996621234"


def session_url() -> str:
    return reverse("verification:session")


def page_attribute(html: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', html)
    assert found, f"the page has no {name}"
    return found.group(1)


def start_session(client: Client, **extra: str):
    """What the page does on the visitor's first act: POST with the CSRF cookie's token."""
    page = client.get("/", **extra).content.decode()
    token = page_attribute(page, "data-csrf-token")
    return client.post(session_url(), headers={"X-CSRFToken": token}, **extra)


@pytest.mark.django_db
def test_cookieless_page_loads_write_no_session():
    """2,000 cookie-less GETs of the page (a crawler, an attacker) add no session row."""
    for _ in range(2000):
        response = Client().get("/")
        assert response.status_code == 200
        assert "sessionid" not in response.cookies
    assert Session.objects.count() == 0


@pytest.mark.django_db
def test_the_page_says_whether_the_browser_has_a_session():
    client = Client(enforce_csrf_checks=True)
    page = client.get("/").content.decode()
    assert page_attribute(page, "data-has-session") == "false"
    assert page_attribute(page, "data-session-url") == session_url()
    assert page_attribute(page, "data-csrf-token")
    assert "csrftoken" in client.cookies
    assert start_session(client).status_code == 200
    page = client.get("/").content.decode()
    assert page_attribute(page, "data-has-session") == "true"
    # A cookie naming a session the server no longer has counts as none.
    Session.objects.all().delete()
    page = client.get("/").content.decode()
    assert page_attribute(page, "data-has-session") == "false"
    assert Session.objects.count() == 0


@pytest.mark.django_db
def test_the_session_endpoint_starts_one_session_per_browser():
    client = Client(enforce_csrf_checks=True)
    response = start_session(client)
    assert response.status_code == 200
    assert response.json() == {"created": True}
    assert "sessionid" in response.cookies
    session = Session.objects.get()
    assert session.get_decoded()[OWNER_SESSION_KEY]
    # Again (a second tab, a double event): the same session, nothing new written.
    again = start_session(client)
    assert again.json() == {"created": False}
    assert Session.objects.get().session_key == session.session_key


@pytest.mark.django_db
def test_the_session_endpoint_needs_the_csrf_token_and_a_post():
    client = Client(enforce_csrf_checks=True)
    client.get("/")
    assert client.post(session_url()).status_code == 403
    assert client.get(session_url()).status_code == 405
    assert Session.objects.count() == 0


@pytest.mark.django_db
def test_new_sessions_are_limited_per_address(settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "NEW_SESSIONS_LIMIT": (2, 3600)}
    for _ in range(2):
        assert start_session(Client(), REMOTE_ADDR="203.0.113.5").status_code == 200
    refused = start_session(Client(), REMOTE_ADDR="203.0.113.5")
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["message"]
    assert 3000 < body["retry_after"] <= 3600 + 360
    assert refused["Retry-After"] == str(body["retry_after"])
    assert Session.objects.count() == 2
    # Another address, and a browser that already has its session, are not held.
    assert start_session(Client(), REMOTE_ADDR="203.0.113.6").status_code == 200
    settings.VERIFICATION = {**settings.VERIFICATION, "NEW_SESSIONS_LIMIT": None}
    assert start_session(Client(), REMOTE_ADDR="203.0.113.5").status_code == 200


@pytest.mark.django_db
def test_the_limit_counts_the_address_the_trusted_proxy_saw(settings):
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "NEW_SESSIONS_LIMIT": (1, 3600),
        "TRUSTED_PROXIES": 1,
    }
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    first = start_session(Client(), HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7", **proxy)
    assert first.status_code == 200
    # A forged left-most entry changes nothing: the proxy appended the real address.
    forged = start_session(Client(), HTTP_X_FORWARDED_FOR="2.2.2.2, 198.51.100.7", **proxy)
    assert forged.status_code == 429
    other = start_session(Client(), HTTP_X_FORWARDED_FOR="198.51.100.8", **proxy)
    assert other.status_code == 200


@pytest.mark.django_db
def test_the_refusal_is_translated(settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "NEW_SESSIONS_LIMIT": (1, 3600)}
    start_session(Client())
    try:
        refused = start_session(Client(), HTTP_ACCEPT_LANGUAGE="ru")
    finally:
        # LocaleMiddleware leaves the request's language active in this thread.
        translation.deactivate()
    assert refused.json()["message"] == (
        "Слишком много новых посещений из вашей сети. Пожалуйста, подождите."
    )


@pytest.fixture
def endpoint_session(fake_settings, make_sender) -> str:
    """A session key the endpoint gave, as the page's first act does."""
    FakeGateway.resend_timeout = 60
    make_sender()
    client = Client(enforce_csrf_checks=True)
    assert start_session(client).status_code == 200
    return client.cookies["sessionid"].value


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_endpoints_session_is_the_one_the_socket_acts_for(endpoint_session, open_tab):
    tab, state = await open_tab(endpoint_session)
    assert state["verification"] is None
    await tab.send(type="send_code", phone_number=PHONE)
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["phone_number"] == "+999 66 2 1234"
    # The owner the endpoint gave is the one the socket started for.
    session = await Session.objects.aget(session_key=endpoint_session)
    assert session.get_decoded()[OWNER_SESSION_KEY]
