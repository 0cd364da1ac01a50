"""Contract routes 1-5: register, login, refresh, logout, update-password."""

import hashlib
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from pinstack_contracts.limits import USERNAME_MAX, USERNAME_MIN
from pinstack_gateway.auth.schemas import (
    LoginRequest,
    RefreshTokenRequest,
    RegisterRequest,
    TokenPair,
    UpdatePasswordRequest,
)
from pinstack_gateway.body import json_body
from pinstack_gateway.deps import AuthDep, CurrentUser, UsersDep, revocations
from pinstack_gateway.fields import MessageData, documented
from pinstack_gateway.limits import limit_auth_ip, limiter
from pinstack_gateway.proxy import forward
from pinstack_kit.envelope import ok
from pinstack_kit.errors import AppError
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.validation import SIMPLE_EMAIL

RegisterBody = Annotated[RegisterRequest, json_body(RegisterRequest)]
LoginBody = Annotated[LoginRequest, json_body(LoginRequest)]
RefreshTokenBody = Annotated[RefreshTokenRequest, json_body(RefreshTokenRequest)]
UpdatePasswordBody = Annotated[UpdatePasswordRequest, json_body(UpdatePasswordRequest)]

# Per client IP, before anything else of the request is looked at.
router = APIRouter(prefix="/api/v1/auth", tags=["auth"], dependencies=[Depends(limit_auth_ip)])

# Answers that mean "wrong name or password": they count as failed logins.
FAILED_LOGIN = (401, 404)


@router.post("/register", summary="Create an account and sign in", **documented(201, TokenPair, 400, 409, 503))
async def register(body: RegisterBody, auth: AuthDep) -> Response:
    return await forward(auth, "POST", "/register", json=body.model_dump(exclude_none=True))


@router.post(
    "/login",
    summary="Sign in with username or email; after repeated failures, further attempts wait longer each time",
    **documented(200, TokenPair, 400, 401, 404),
)
async def login(request: Request, body: LoginBody, auth: AuthDep, users: UsersDep) -> Response:
    rl = limiter(request)
    records = None
    if rl.settings.rate_limit_login_failures > 0:
        records = await rl.check_login(request, await account_of(users, body.login))
    try:
        response = await forward(auth, "POST", "/login", json=body.model_dump())
    except AppError as exc:
        if records is not None and exc.status in FAILED_LOGIN:
            await rl.login_failed(request, records)
        raise
    if records is not None:
        await rl.login_succeeded(records)
    return response


async def account_of(users: ServiceClient, login: str) -> str:
    """What failed logins count against: the account the login names, whether by username (in
    any capitalisation) or by e-mail, as the users service resolves it; a name that no account
    has counts as itself."""
    by_email = bool(SIMPLE_EMAIL.fullmatch(login))
    if by_email or USERNAME_MIN <= len(login) <= USERNAME_MAX:
        path = f"/users/by-email/{quote(login, safe='')}" if by_email else f"/users/by-username/{quote(login, safe='')}"
        try:
            user = await users.find(path)
        except AppError as exc:
            if exc.status >= 500:
                raise
            user = None  # a string the users service does not take as a name: no account
        if user is not None:
            return f"account:{user['id']}"
    return "name:" + hashlib.sha256(login.lower().encode()).hexdigest()


@router.post("/refresh", summary="Rotate a refresh token for a new pair", **documented(200, TokenPair, 400, 401, 404))
async def refresh(body: RefreshTokenBody, auth: AuthDep) -> Response:
    return await forward(auth, "POST", "/refresh", json=body.model_dump())


@router.post("/logout", summary="Revoke a refresh token", **documented(200, None, 400, 401))
async def logout(request: Request, body: RefreshTokenBody, auth: AuthDep) -> Response:
    ended = (await auth.call("POST", "/logout", json=body.model_dump())).json().get("data") or {}
    if ended.get("session_id"):
        await revocations(request).end_session(str(ended["session_id"]))
    return ok()


@router.post(
    "/update-password",
    summary="Change the caller's password; ends every session",
    **documented(200, MessageData, 400, 401, 404),
)
async def update_password(
    request: Request,
    user_id: CurrentUser,
    body: UpdatePasswordBody,
    auth: AuthDep,
) -> Response:
    response = await forward(auth, "POST", "/update-password", json={"user_id": user_id, **body.model_dump()})
    await revocations(request).end_tokens_of(user_id)
    return response
