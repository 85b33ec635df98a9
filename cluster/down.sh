#!/usr/bin/env bash
# make down: stop what `make up` started, by the pids it recorded. Data stays in .run/.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
svc="$ROOT/cluster/services.sh"
"$svc" stop ray
# a machine that joined another head (make join): its worker node too, before make clean-data
# deletes the directory it runs in
if pid_alive ray-worker || [[ -e "$RUN/join.env" ]]; then "$ROOT/cluster/leave.sh"; fi
"$svc" stop kafka
"$svc" stop redis
"$svc" stop pg
log "stopped; data kept in $RUN"
