from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_kit.envelope import ok
from pinstack_users.credentials import service
from pinstack_users.credentials.schemas import ChangePassword, VerifyCredentials
from pinstack_users.deps import SessionDep

router = APIRouter(tags=["credentials"])


@router.post("/credentials/verify", summary="The user id for a login and password")
async def verify_credentials(body: VerifyCredentials, session: SessionDep) -> Response:
    return ok({"user_id": await service.verify(session, body.login, body.password)})


@router.put("/users/{user_id}/password", summary="Change a password after checking the old one")
async def change_password(
    user_id: Annotated[int, Path(ge=ID_MIN, le=ID_MAX)], body: ChangePassword, session: SessionDep
) -> Response:
    await service.change(session, user_id, body.old_password, body.new_password)
    return ok()
