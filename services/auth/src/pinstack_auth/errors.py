from pinstack_kit.errors import Unauthorized


class InvalidRefreshToken(Unauthorized):
    message = "invalid refresh token"


class RefreshTokenReused(InvalidRefreshToken):
    commit = True  # the family revocation must stick although the request fails
