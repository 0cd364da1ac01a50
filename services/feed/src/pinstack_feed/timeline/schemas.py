from pydantic import BaseModel, Field

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class FeedQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the previous page")
