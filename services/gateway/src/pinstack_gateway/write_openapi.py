"""`python -m pinstack_gateway.write_openapi` (`make openapi`): writes the checked-in OpenAPI
document of the app. A module of its own: the app is built on `openapi`, never the reverse."""

import sys

from pinstack_gateway.main import create_app
from pinstack_gateway.openapi import DOCUMENT, render


def main() -> int:
    DOCUMENT.write_bytes(render(create_app()))
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
