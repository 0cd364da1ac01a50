from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pinstack_kit.validation import INT64_MAX

Id = Annotated[int, Field(ge=1, le=INT64_MAX)]
MAX_STATS_IDS = 100


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class ViewBody(Strict):
    user_id: Id


class PageQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)


class StatsQuery(BaseModel):
    ids: str = Field(max_length=2100, description="comma-separated post ids, at most 100")
    viewer_id: int = Field(0, ge=0, le=INT64_MAX, description="0 or absent: nobody (liked_by_viewer false)")
