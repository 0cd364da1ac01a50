from pydantic import BaseModel, ConfigDict, Field

from pinstack_contracts.limits import CURSOR_MAX, ID_MAX, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN, Id

MAX_STATS_IDS = PAGE_SIZE_MAX  # the gateway asks for the counters of a whole feed page at once


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class ViewBody(Strict):
    user_id: Id


class PageQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    limit: int = Field(PAGE_SIZE_DEFAULT, ge=PAGE_SIZE_MIN, le=PAGE_SIZE_MAX)
    cursor: str | None = Field(None, max_length=CURSOR_MAX)


class StatsQuery(BaseModel):
    ids: str = Field(max_length=2100, description="comma-separated post ids, at most 100")
    viewer_id: int = Field(0, ge=0, le=ID_MAX, description="0 or absent: nobody (liked_by_viewer false)")
