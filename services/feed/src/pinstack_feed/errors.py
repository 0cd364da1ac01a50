from pinstack_kit.errors import BadRequest


class InvalidCursor(BadRequest):
    message = "validation failed"
