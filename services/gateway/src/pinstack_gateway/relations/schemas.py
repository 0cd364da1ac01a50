from pydantic import BaseModel, Field

from pinstack_contracts.limits import ID_MIN
from pinstack_gateway.fields import Body, Int64


class FollowRequest(Body):
    followee_id: Int64 = Field(0, ge=ID_MIN)


class RelationUser(BaseModel):
    id: int
    username: str = Field(description="`Missing user` when the account no longer exists")
    avatar_url: str | None = None


class FollowersPage(BaseModel):
    followers: list[RelationUser]
    total: int
    page: int
    limit: int


class FolloweesPage(BaseModel):
    followees: list[RelationUser]
    total: int
    page: int
    limit: int
