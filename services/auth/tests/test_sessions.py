"""Register, login, rotation, reuse detection, logout and password change on real servers."""

import time
import uuid
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from pinstack_auth.sessions import repository
from pinstack_auth.sessions.consumers import on_user_event
from pinstack_kit.db import sessionmaker
from pinstack_kit.jwt import decode, keys_from_jwks
from pinstack_kit.worker import Housekeeping

pytestmark = pytest.mark.integration

PASSWORD = "a good password"


async def register(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    name = f"a{uuid.uuid4().hex[:12]}"
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    response = await client.post("/register", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"], name


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/refresh", json={"refresh_token": token})


class TestTokens:
    async def test_pair_verifies_against_the_published_jwks_with_distinct_types(
        self, client: httpx.AsyncClient
    ) -> None:
        pair, _ = await register(client)
        keys = keys_from_jwks((await client.get("/.well-known/jwks.json")).json())
        access = decode(pair["access_token"], keys, token_type="access", issuer="pinstack")
        refresh_claims = decode(pair["refresh_token"], keys, token_type="refresh", issuer="pinstack")
        assert access["user_id"] == refresh_claims["user_id"] > 0
        assert access["exp"] < refresh_claims["exp"]

    async def test_access_token_names_its_session_and_its_issue_time_to_the_millisecond(
        self, client: httpx.AsyncClient
    ) -> None:
        """What the gateway needs to end a session (`sid`) and the tokens issued before a password
        change, not the ones after (`iat` in ms)."""
        before = time.time()
        pair, _ = await register(client)
        access = decode_claims(pair["access_token"])
        assert access["sid"] == decode_claims(pair["refresh_token"])["fam"]
        assert before - 0.001 <= access["iat"] <= time.time()
        assert round(access["iat"], 3) == access["iat"]
        rotated = (await refresh(client, pair["refresh_token"])).json()["data"]
        assert decode_claims(rotated["access_token"])["sid"] == access["sid"]  # the same login
        again, _ = await register(client)
        assert decode_claims(again["access_token"])["sid"] != access["sid"]


class TestRefresh:
    async def test_rotation_invalidates_the_old_token(self, client: httpx.AsyncClient) -> None:
        pair, _ = await register(client)
        rotated = await refresh(client, pair["refresh_token"])
        assert rotated.status_code == 200
        assert rotated.json()["data"]["refresh_token"] != pair["refresh_token"]

    async def test_reuse_of_a_rotated_token_revokes_the_whole_family(self, client: httpx.AsyncClient) -> None:
        pair, _ = await register(client)
        newer = (await refresh(client, pair["refresh_token"])).json()["data"]
        reused = await refresh(client, pair["refresh_token"])
        assert reused.json() == {"status": 401, "message": "invalid refresh token"}
        # the legitimate holder's newer token died with the family
        assert (await refresh(client, newer["refresh_token"])).json()["message"] == "invalid refresh token"

    async def test_expired_token_is_unauthenticated(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        pair, _ = await register(client)
        keys = app.state.keys
        claims = decode(pair["refresh_token"], keys.verification_keys(), token_type="refresh", issuer="pinstack")
        expired = keys._sign({**claims, "exp": int(time.time()) - 60})
        assert (await refresh(client, expired)).json() == {"status": 401, "message": "unauthenticated"}

    async def test_garbage_is_an_invalid_refresh_token(self, client: httpx.AsyncClient) -> None:
        pair, _ = await register(client)
        for token in ("garbage", pair["access_token"], pair["refresh_token"][:-4] + "AAAA"):
            assert (await refresh(client, token)).json() == {"status": 401, "message": "invalid refresh token"}


class TestLogoutAndPassword:
    async def test_logout_revokes_names_the_session_and_a_second_logout_fails(self, client: httpx.AsyncClient) -> None:
        pair, _ = await register(client)
        body = {"refresh_token": pair["refresh_token"]}
        session = decode_claims(pair["access_token"])["sid"]
        assert (await client.post("/logout", json=body)).json() == {"status": 200, "data": {"session_id": session}}
        assert (await client.post("/logout", json=body)).json()["message"] == "invalid refresh token"
        assert (await refresh(client, pair["refresh_token"])).status_code == 401

    async def test_logout_with_an_expired_token_names_no_session(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        pair, _ = await register(client)
        keys = app.state.keys
        claims = decode(pair["refresh_token"], keys.verification_keys(), token_type="refresh", issuer="pinstack")
        expired = keys._sign({**claims, "exp": int(time.time()) - 60})
        assert (await client.post("/logout", json={"refresh_token": expired})).json() == {"status": 200}

    async def test_password_change_ends_every_session(self, client: httpx.AsyncClient) -> None:
        pair, name = await register(client)
        second = (await client.post("/login", json={"login": name, "password": PASSWORD})).json()["data"]
        user_id = decode_user(pair)
        changed = await client.post(
            "/update-password", json={"user_id": user_id, "old_password": PASSWORD, "new_password": "another one!"}
        )
        assert changed.json() == {"status": 200, "data": {"message": "Password updated successfully"}}
        for token in (pair["refresh_token"], second["refresh_token"]):
            assert (await refresh(client, token)).status_code == 401
        assert (await client.post("/login", json={"login": name, "password": "another one!"})).status_code == 200


class TestUserDeleted:
    async def test_deleting_the_user_ends_its_sessions(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        pair, _ = await register(client)
        event = {"type": "user_deleted", "data": {"id": decode_user(pair)}}
        record = SimpleNamespace(value=orjson.dumps(event), headers=[("event_type", b"user_deleted")])
        async with sessionmaker(app.state.engine)() as session, session.begin():
            await on_user_event(session, record)  # type: ignore[arg-type]
        expected = {"status": 401, "message": "invalid refresh token"}
        assert (await refresh(client, pair["refresh_token"])).json() == expected

    async def test_refresh_is_refused_before_the_deletion_event_arrives(
        self, client: httpx.AsyncClient, users_url: str
    ) -> None:
        pair, _ = await register(client)
        async with httpx.AsyncClient(base_url=users_url) as users:
            assert (await users.delete(f"/users/{decode_user(pair)}")).status_code == 204
        expected = {"status": 401, "message": "invalid refresh token"}
        assert (await refresh(client, pair["refresh_token"])).json() == expected


def decode_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def decode_user(pair: dict[str, str]) -> int:
    return int(decode_claims(pair["access_token"])["user_id"])


class TestHousekeeping:
    async def test_refresh_tokens_a_day_past_expiry_are_purged(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        old, _ = await register(client)
        fresh, _ = await register(client)
        old_user, fresh_user = decode_user(old), decode_user(fresh)
        engine = app.state.engine
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE refresh_tokens SET expires_at = now() - interval '2 days' WHERE user_id = :u"),
                {"u": old_user},
            )
        await Housekeeping(engine, [repository.PURGE_EXPIRED]).run_once()
        async with engine.connect() as conn:
            left = await conn.execute(
                text("SELECT user_id, count(*) FROM refresh_tokens WHERE user_id IN (:a, :b) GROUP BY user_id"),
                {"a": old_user, "b": fresh_user},
            )
            assert dict(left.all()) == {fresh_user: 1}
