"""The public API's field limits, written once.

The gateway validates requests with these and publishes them in its OpenAPI document; the services
check their internal APIs with the same numbers, so a value the gateway lets through is never
refused behind it (a test checks that the published document states each of them). Change a
limit here and both sides change together.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Ids are int64 (Go's int64, PostgreSQL's bigint) and start at 1.
ID_MIN, ID_MAX = 1, 2**63 - 1
Id = Annotated[int, Field(ge=ID_MIN, le=ID_MAX)]

# Accounts
USERNAME_MIN, USERNAME_MAX = 3, 32
EMAIL_MAX = 254  # the longest address SMTP can carry (RFC 5321)
LOGIN_MAX = EMAIL_MAX  # a username or an email, the longer of the two
PASSWORD_MIN = 6  # a password given to sign in or to prove it is the caller (upstream's gateway rule)
NEW_PASSWORD_MIN = 8  # a password being set: upstream's backends refused 6-7 characters
PASSWORD_MAX = 256  # bounds the work of hashing one (argon2 reads all of it)
FULL_NAME_MAX = 100
BIO_MAX = 500
AVATAR_URL_MAX = 2048
REFRESH_TOKEN_MAX = 4096
SEARCH_QUERY_MIN, SEARCH_QUERY_MAX = 1, 100

# Posts
TITLE_MIN, TITLE_MAX = 1, 255
CONTENT_MAX = 200_000
TAGS_MAX = 10  # distinct names: repeated ones count once
TAG_MIN, TAG_MAX = 1, 50
MEDIA_MAX = 9  # items of a post; their positions are 1 to MEDIA_MAX
MEDIA_URL_MAX = 512

# Comments and notifications
COMMENT_MIN, COMMENT_MAX = 1, 2000
NOTIFICATION_TYPE_MIN, NOTIFICATION_TYPE_MAX = 1, 64

# Paging. Each list takes `limit` items per page, PAGE_SIZE_MIN to PAGE_SIZE_MAX; the upstream
# lists that kept page numbers count them as int32 (search stops earlier).
PAGE_SIZE_MIN, PAGE_SIZE_MAX = 1, 100
PAGE_SIZE_DEFAULT = 20
SEARCH_PAGE_SIZE_DEFAULT = 10  # upstream's defaults for users search and notifications
NOTIFICATIONS_PAGE_SIZE_DEFAULT = 10
PAGE_MIN, PAGE_MAX = 1, 2**31 - 1
SEARCH_PAGE_MAX = 1_000_000
CURSOR_MAX = 200  # characters of an opaque cursor
