"""`python -m pinstack_operator [kopf run options]`: the Deployment's entry point.

Equivalent to `kopf run -m pinstack_operator.handlers [options]`.
"""

from __future__ import annotations

import sys

from kopf.cli import main as kopf_main


def main() -> None:
    sys.argv = ["kopf", "run", "-m", "pinstack_operator.handlers", *sys.argv[1:]]
    kopf_main()


if __name__ == "__main__":
    main()
