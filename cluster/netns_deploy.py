"""`python -m cluster.netns_deploy [--restart]`: the platform's own deploy (cluster.deploy), run
by cluster/netns.sh on its head host, with the Serve gateway pinned to the head.

The namespace harness measures what worker hosts add to the pipeline: the head keeps the
infrastructure and the accept path (uncapped), the worker hosts get the pipeline actors (CPU
capped). Left to Serve's spread scheduling, the gateway replica (num_cpus 0) may land on a
capped worker. `NETNS_GATEWAY=any` keeps Serve's own placement.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    from cluster.deploy import deploy
    from core.settings import get_settings

    on_head = os.environ.get("NETNS_GATEWAY", "head") == "head"
    deploy(get_settings(), restart="--restart" in argv, gateway_on_head=on_head)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
