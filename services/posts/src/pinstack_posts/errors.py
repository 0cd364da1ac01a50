from pinstack_kit.errors import Forbidden, NotFound


class PostNotFound(NotFound):
    message = "post not found"


class UserNotFound(NotFound):
    message = "user not found"


class NotTheAuthor(Forbidden):
    message = "forbidden"
