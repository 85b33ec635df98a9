#!/usr/bin/env bash
# Installs the Node.js tools the checks use (newman, the Postman collection runner) into
# .run/node with pinned versions. Idempotent; fast when they are already there.
#   cluster/install-node-tools.sh        prints the path of the newman binary
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NEWMAN_VERSION="${NEWMAN_VERSION:-6.2.2}"
NODE_DIR="$RUN/node"
NEWMAN="$NODE_DIR/node_modules/.bin/newman"

if ! command -v npm >/dev/null; then
  log "apt: installing nodejs and npm" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >"$RUN/logs/apt-node.log" 2>&1 \
    || die "apt-get install nodejs npm failed; see $RUN/logs/apt-node.log"
fi

installed="$(node -p "require('$NODE_DIR/node_modules/newman/package.json').version" 2>/dev/null || true)"
if [[ "$installed" != "$NEWMAN_VERSION" || ! -x "$NEWMAN" ]]; then
  log "npm: installing newman $NEWMAN_VERSION into $NODE_DIR" >&2
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact "newman@$NEWMAN_VERSION" \
    >"$RUN/logs/npm-node-tools.log" 2>&1 \
    || die "npm install newman@$NEWMAN_VERSION failed; see $RUN/logs/npm-node-tools.log"
fi
echo "$NEWMAN"
