from fastapi import APIRouter
from starlette.responses import Response

from pinstack_auth.deps import KeysDep, SessionDep, UsersDep
from pinstack_auth.sessions.schemas import Login, RefreshTokenBody, Register, UpdatePassword
from pinstack_auth.sessions.service import SessionService
from pinstack_kit.envelope import ok

router = APIRouter(tags=["sessions"])


@router.post("/register", status_code=201)
async def register(body: Register, session: SessionDep, keys: KeysDep, users: UsersDep) -> Response:
    pair = await SessionService(session, keys, users).register(body.model_dump(exclude_none=True))
    return ok(pair, status=201)


@router.post("/login")
async def login(body: Login, session: SessionDep, keys: KeysDep, users: UsersDep) -> Response:
    return ok(await SessionService(session, keys, users).login(body.login, body.password))


@router.post("/refresh")
async def refresh(body: RefreshTokenBody, session: SessionDep, keys: KeysDep, users: UsersDep) -> Response:
    return ok(await SessionService(session, keys, users).refresh(body.refresh_token))


@router.post("/logout")
async def logout(body: RefreshTokenBody, session: SessionDep, keys: KeysDep, users: UsersDep) -> Response:
    ended = await SessionService(session, keys, users).logout(body.refresh_token)
    return ok({"session_id": ended} if ended else None)


@router.post("/update-password")
async def update_password(body: UpdatePassword, session: SessionDep, keys: KeysDep, users: UsersDep) -> Response:
    await SessionService(session, keys, users).update_password(body.user_id, body.old_password, body.new_password)
    return ok({"message": "Password updated successfully"})
