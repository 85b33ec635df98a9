#!/usr/bin/env bash
# make leave: stop the worker node `make join` started on this machine, by the pid it recorded
# (its Ray processes end with it; actors that ran here restart on the other nodes).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
pid_alive ray-worker || { log "not joined (no running worker node recorded in $RUN/pids)"; exit 0; }
stop_pid ray-worker 60
remove_haproxy_dir
rm -f "$RUN/join.env"
log "left the cluster"
