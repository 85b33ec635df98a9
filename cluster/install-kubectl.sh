#!/usr/bin/env bash
# Installs kubectl, which the offline checks of k8s/ run (`kubectl kustomize k8s/`, and each folder
# of the seed's apply sequence read as `kubectl apply -f` reads it), from Debian's packages
# (package kubernetes-client; Ubuntu's GitHub runners ship kubectl already). Idempotent.
#   cluster/install-kubectl.sh        prints the path of kubectl
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! command -v kubectl >/dev/null; then
  if ! apt_has kubernetes-client; then
    apt_get update -qq >"$RUN/logs/apt-kubectl.log" 2>&1 \
      || die "apt-get update failed; see $RUN/logs/apt-kubectl.log"
  fi
  apt_has kubernetes-client \
    || die "kubectl is missing and this system's apt has no kubernetes-client package; install kubectl (any version >= 1.20) and run again"
  log "apt: installing kubernetes-client (kubectl)" >&2
  apt_get install -y -qq kubernetes-client >>"$RUN/logs/apt-kubectl.log" 2>&1 \
    || die "apt-get install kubernetes-client failed; see $RUN/logs/apt-kubectl.log"
fi
command -v kubectl
