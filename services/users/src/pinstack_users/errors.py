from pinstack_kit.errors import Conflict, NotFound, Unauthorized


class UserNotFound(NotFound):
    message = "user not found"


class UsernameTaken(Conflict):
    message = "username already exists"


class EmailTaken(Conflict):
    message = "email already exists"


class InvalidCredentials(Unauthorized):
    message = "invalid credentials"
