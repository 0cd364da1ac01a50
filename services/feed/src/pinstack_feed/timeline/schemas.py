from pydantic import BaseModel, Field

from pinstack_contracts.limits import CURSOR_MAX, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN


class FeedQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    limit: int = Field(PAGE_SIZE_DEFAULT, ge=PAGE_SIZE_MIN, le=PAGE_SIZE_MAX)
    cursor: str | None = Field(None, max_length=CURSOR_MAX, description="`next_cursor` of the previous page")
