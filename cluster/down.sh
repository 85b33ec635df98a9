#!/usr/bin/env bash
# make down: stop what `make up` started, by the pids it recorded. Data stays in .run/.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
svc="$ROOT/cluster/services.sh"
"$svc" stop ray
"$svc" stop kafka
"$svc" stop redis
"$svc" stop pg
log "stopped; data kept in $RUN"
