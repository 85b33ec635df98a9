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
from typing import Any

# A resource every Ray head node has, and no other node.
HEAD_RESOURCE = "node:__internal_head__"


def main(argv: list[str]) -> int:
    import cluster.app
    from cluster.deploy import deploy
    from core.settings import get_settings

    if os.environ.get("NETNS_GATEWAY", "head") == "head":
        gateway: Any = cluster.app.Gateway  # a Serve Deployment (its stubs show the class)
        options = {**gateway.ray_actor_options, "resources": {HEAD_RESOURCE: 0.001}}
        cluster.app.app = gateway.options(ray_actor_options=options).bind()
    deploy(get_settings(), restart="--restart" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
