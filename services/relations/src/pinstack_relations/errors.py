from pinstack_kit.errors import BadRequest, Conflict, NotFound


class CannotFollowYourself(BadRequest):
    message = "cannot follow yourself"


class CannotUnfollowYourself(BadRequest):
    message = "cannot unfollow yourself"


class UserNotFound(NotFound):
    message = "user not found"


class FollowNotFound(NotFound):
    message = "follow relation not found"


class AlreadyFollowing(Conflict):
    message = "already following this user"
