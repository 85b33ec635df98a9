#!/usr/bin/env bash
# make leave: stop the worker node `make join` started on this machine, by the pid it recorded
# (its Ray processes end with it; actors that ran here restart on the other nodes).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# A node that is gone already (the machine rebooted, the head stopped and Ray gave up) still
# leaves its record: make up refuses while join.env says this machine is a worker node.
if pid_alive ray-worker; then
  stop_pid ray-worker 60
elif [[ -e "$RUN/join.env" ]]; then
  log "the worker node recorded here is not running any more; forgetting the join"
else
  log "not joined (no worker node recorded in $RUN)"
  exit 0
fi
remove_haproxy_dir
rm -f "$RUN/join.env"
log "left the cluster"
