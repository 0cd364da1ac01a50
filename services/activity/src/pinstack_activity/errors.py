from pinstack_kit.errors import BadRequest, Forbidden, NotFound


class PostNotFound(NotFound):
    message = "post not found"


class CommentNotFound(NotFound):
    message = "comment not found"


class NotAllowed(Forbidden):
    message = "forbidden"


class InvalidInput(BadRequest):
    message = "validation failed"
