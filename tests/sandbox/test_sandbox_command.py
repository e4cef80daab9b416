"""``manage.py telegram_sandbox`` and the ``verification.testing`` pytest plugin."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
from telethon.crypto import rsa

from verification.gateway.telegram_gateway import TelegramGatewayAPI
from verification.testing import sandbox_settings, telegram_sandbox  # noqa: F401 - fixtures

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


async def _read_until(stream: asyncio.StreamReader, pattern: str, seen: list[str]) -> re.Match:
    while True:
        line = (await asyncio.wait_for(stream.readline(), 15)).decode()
        assert line, f"command exited; output so far: {''.join(seen)}"
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match


@pytest.mark.asyncio
@pytest.mark.timeout(40)
async def test_command_serves_prints_codes_and_stops_on_ctrl_c(tmp_path, new_client):
    key_file = tmp_path / "sandbox.pem"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MANAGE_PY),
        "telegram_sandbox",
        "--port",
        "0",
        "--public-key-file",
        str(key_file),
        "--resend-timeout",
        "7",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    try:
        match = await _read_until(process.stdout, r"listening on 127\.0\.0\.1:(\d+)", seen)
        port = int(match.group(1))
        await _read_until(process.stdout, re.escape(str(key_file)), seen)
        assert key_file.read_text().startswith("-----BEGIN RSA PUBLIC KEY-----")

        rsa.add_key(key_file.read_text(), old=False)
        client = new_client(port)
        await client.connect()
        try:
            sent = await client.send_code_request("+9996641234")
            assert sent.timeout == 7
        finally:
            await client.disconnect()
        await _read_until(process.stdout, r"code 44444 for \+9996641234 \(sms\)", seen)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), 15)
        await process.wait()
    assert "Sandbox stopped." in rest.decode()
    assert process.returncode == 0


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_command_starts_while_the_site_points_at_it(tmp_path):
    """Configured as in .env.example, the site names the key file the command is about to
    write. The site's checks (E023: no such file) must not stop the command, and once it runs
    they pass."""
    key_file = tmp_path / "telegram-sandbox.pem"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # The demo site reads these from the environment (.env.example).
        "DJANGO_SETTINGS_MODULE": "passportsite.settings",
        "TELEGRAM_SERVER": f"127.0.0.1:{port}",
        "TELEGRAM_SERVER_PUBLIC_KEY": str(key_file),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MANAGE_PY),
        "telegram_sandbox",
        "--port",
        str(port),
        "--public-key-file",
        str(key_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    seen: list[str] = []
    try:
        await _read_until(process.stdout, rf"listening on 127\.0\.0\.1:{port}\b", seen)
        await _read_until(process.stdout, re.escape(f"TELEGRAM_SERVER_PUBLIC_KEY={key_file}"), seen)
        assert key_file.read_text().startswith("-----BEGIN RSA PUBLIC KEY-----")

        check = await asyncio.create_subprocess_exec(
            sys.executable,
            str(MANAGE_PY),
            "check",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        output = (await asyncio.wait_for(check.communicate(), 30))[0].decode()
        assert check.returncode == 0, output
        assert "verification.E02" not in output
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), 15)
        await process.wait()
    assert "Sandbox stopped." in rest.decode(), "".join(seen) + rest.decode()
    assert process.returncode == 0


def test_plugin_points_settings_at_the_sandbox(sandbox_settings, settings):  # noqa: F811
    config = settings.VERIFICATION
    assert config["TELEGRAM_SERVER"] == sandbox_settings.address
    assert Path(config["TELEGRAM_SERVER_PUBLIC_KEY"]).read_text() == sandbox_settings.public_key_pem
    assert (config["TELEGRAM_API_ID"], config["TELEGRAM_API_HASH"]) == (1, "sandbox")
    assert sandbox_settings.server.resend_timeout == 2.0
    assert sandbox_settings.server.code_lifetime == 60.0


@pytest.mark.asyncio
@pytest.mark.timeout(40)
async def test_command_serves_the_gateway_api_beside_mtproto(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MANAGE_PY),
        "telegram_sandbox",
        "--port",
        "0",
        "--public-key-file",
        str(tmp_path / "sandbox.pem"),
        "--gateway-port",
        "0",
        "--gateway-token",
        "local-token",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    try:
        await _read_until(process.stdout, r"Telegram sandbox listening on 127\.0\.0\.1:\d+", seen)
        match = await _read_until(
            process.stdout, r"Gateway API sandbox listening on (http://127\.0\.0\.1:\d+/)", seen
        )
        url = match.group(1)
        await _read_until(process.stdout, re.escape(f"TELEGRAM_GATEWAY_URL={url}"), seen)
        await _read_until(process.stdout, r"TELEGRAM_GATEWAY_TOKEN=local-token", seen)

        api = TelegramGatewayAPI(token="local-token", url=url, timeout=5)
        try:
            status = await api.send_verification_message("+9996641234", code_length=6)
        finally:
            await api.aclose()
        assert status.request_id
        await _read_until(process.stdout, r"code 444444 for \+9996641234", seen)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), 15)
        await process.wait()
    assert "Sandbox stopped." in rest.decode()
    assert process.returncode == 0
