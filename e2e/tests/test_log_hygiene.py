"""After everything else ran: no password, token or private key the tier used is in any log of
the stack ($PINSTACK_STATE_DIR/logs/*.log)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pinstack_e2e import tokens
from pinstack_e2e.client import Api, data_of, new_password

PASSWORD = re.compile(rb"Pw-[0-9a-f]{32}")
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def exercise_every_secret_path(api: Api, new_account) -> None:
    """Send each kind of secret through the stack once more, including through error paths."""
    user = new_account("hygiene")
    api.post("/auth/login", json={"login": user.username, "password": new_password()})
    api.post("/auth/login", json={"login": f"nobody-{user.username}", "password": new_password()})
    pair = api.login(user.email, user.password)
    api.refresh(pair["refresh_token"])
    api.refresh(pair["refresh_token"])  # a replay: the error path
    api.get("/notification/unread-count", token=tokens.unsigned(*tokens.parts(pair["access_token"])))
    api.get("/notification/unread-count", token=pair["access_token"] + "x")
    new = new_password()
    data_of(
        api.post("/auth/update-password", token=user.access, json={"old_password": user.password, "new_password": new}),
        200,
    )
    api.post(
        "/auth/update-password", token=user.access, json={"old_password": user.password, "new_password": new_password()}
    )
    api.post("/auth/logout", json={"refresh_token": user.refresh})
    api.post("/users", token=user.access, json={"username": "x", "email": "bad", "password": new_password()})


def find_leaks(logs: list[Path], secrets: set[str], key_lines: set[str]) -> list[str]:
    """`file: first characters...` for every password, token (or token minus its signature) and
    key line of `secrets`/`key_lines` found in `logs`."""
    passwords = {s.encode() for s in secrets if PASSWORD.fullmatch(s.encode())}
    signed_parts = {s.encode().rsplit(b".", 1)[0] for s in secrets if JWT.fullmatch(s.encode())}
    leaks = []
    for log in logs:
        data = log.read_bytes()
        found = {m for m in PASSWORD.findall(data) if m in passwords}
        found |= {m for m in JWT.findall(data) if m.rsplit(b".", 1)[0] in signed_parts}
        found |= {line.encode() for line in key_lines if line.encode() in data}
        leaks += [f"{log.name}: {m[:24].decode(errors='replace')}..." for m in sorted(found)]
    return leaks


@pytest.mark.last
def test_no_secret_reaches_a_log_file(api: Api, new_account, state_dir: Path) -> None:
    exercise_every_secret_path(api, new_account)
    key_lines = {s for s in api.secrets if not PASSWORD.fullmatch(s.encode()) and not JWT.fullmatch(s.encode())}
    dev_key = state_dir / "secrets" / "jwt-ed25519.pem"
    if dev_key.is_file():
        key_lines.update(tokens.pem_body(dev_key.read_text()))
    logs = sorted((state_dir / "logs").glob("*.log"))
    assert logs, f"no logs under {state_dir / 'logs'}"
    assert any(PASSWORD.fullmatch(s.encode()) for s in api.secrets) and any(
        JWT.fullmatch(s.encode()) for s in api.secrets
    )
    leaks = find_leaks(logs, api.secrets, key_lines)
    assert not leaks, "secrets found in the stack's logs:\n" + "\n".join(leaks)
