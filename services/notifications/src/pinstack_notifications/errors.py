from pinstack_kit.errors import Forbidden, NotFound


class UserNotFound(NotFound):
    message = "user not found"


class NotificationNotFound(NotFound):
    message = "notification not found"


class NotificationAccessDenied(Forbidden):
    message = "access to notification denied"
