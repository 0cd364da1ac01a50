"""A Managed Redis keeps the operator's ACL users across a restart: Debian's redis-server started
by the same script the StatefulSet runs, on a temporary directory instead of the volume."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from redis.backoff import NoBackoff
from redis.retry import Retry

from pinstack_operator.builders.managed import REDIS_START
from pinstack_operator.builders.redis import AclUser
from pinstack_operator.steps import redis as redis_step
from pinstack_testing import free_port, stop_process

pytestmark = pytest.mark.integration
NO_RETRY = Retry(NoBackoff(), 0)  # a refused login is the answer, not a blip to retry
USER = AclUser("posts", "env.posts", "env.posts:")


class Server:
    def __init__(self, data: Path) -> None:
        self.data, self.port = data, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, admin_password: str) -> None:
        script = REDIS_START.replace("/data", str(self.data))
        args = ["sh", "-c", script, "redis", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        with (self.data / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own script and redis-server
                args, env={"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": admin_password}, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while not self.login("default", admin_password):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis did not answer on {self.port}: {(self.data / 'redis.log').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.proc is not None
        stop_process(self.proc)

    def admin(self, password: str) -> redis_step.Admin:
        return redis_step.Admin("127.0.0.1", self.port, "default", password, tls=False)

    def login(self, username: str | None, password: str) -> bool:
        try:
            return bool(
                redis_sync.Redis(port=self.port, username=username, password=password or None, retry=NO_RETRY).ping()
            )
        except (redis_sync.exceptions.AuthenticationError, redis_sync.exceptions.ResponseError):
            return False  # wrong password, or NOAUTH for a client that gave none
        except redis_sync.exceptions.ConnectionError:
            return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    if s.proc is not None:
        s.stop()


async def test_acl_users_survive_a_restart_and_the_admin_password_follows_the_secret(server: Server) -> None:
    server.start("admin-one")
    assert not server.login(None, "")  # never `nopass`, not even on a first start
    assert await redis_step.ensure_user(server.admin("admin-one"), USER, "posts-pw", "env/pinstack")
    assert "user env.posts on" in (server.data / "users.acl").read_text()

    server.stop()
    server.start("admin-two")  # the admin Secret changed while Redis was down

    assert server.login(USER.username, "posts-pw")  # at once, before any reconcile
    assert server.login("default", "admin-two") and not server.login("default", "admin-one")
    assert not server.login(None, "")
    # and the operator sees its user as it left it: nothing to change
    assert await redis_step.ensure_user(server.admin("admin-two"), USER, "posts-pw", "env/pinstack") == []

    assert await redis_step.delete_user(server.admin("admin-two"), USER, "env/pinstack")
    server.stop()
    server.start("admin-two")
    assert not server.login(USER.username, "posts-pw")  # a deleted user stays deleted
