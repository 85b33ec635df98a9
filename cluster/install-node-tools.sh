#!/usr/bin/env bash
# Installs the Node.js tools the checks use (newman, the Postman collection runner) into
# .run/node: exactly the tree of cluster/node/package-lock.json (`npm ci`: every package, newman's
# dependencies too, at its locked version and checked against its integrity hash). Idempotent:
# a stamp of the lock file in node_modules, so fast when that tree is there.
#   cluster/install-node-tools.sh        prints the path of the newman binary
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SPEC_DIR="$ROOT/cluster/node"
NODE_DIR="$RUN/node"
NEWMAN="$NODE_DIR/node_modules/.bin/newman"
# npm ci empties node_modules first: an interrupted install leaves no stamp
lock="$(cat "$SPEC_DIR/package.json" "$SPEC_DIR/package-lock.json" | sha1sum | cut -c1-12)"
stamp="$NODE_DIR/node_modules/.installed-$lock"

if ! command -v npm >/dev/null; then
  log "apt: installing nodejs and npm" >&2
  { apt_get update -qq && apt_get install -y -qq nodejs npm; } >"$RUN/logs/apt-node.log" 2>&1 \
    || die "apt-get install nodejs npm failed; see $RUN/logs/apt-node.log"
fi

if [[ ! -f "$stamp" || ! -x "$NEWMAN" ]]; then
  log "npm: installing newman (cluster/node/package-lock.json) into $NODE_DIR" >&2
  mkdir -p "$NODE_DIR"
  cp "$SPEC_DIR/package.json" "$SPEC_DIR/package-lock.json" "$NODE_DIR/"
  npm ci --prefix "$NODE_DIR" --no-audit --no-fund >"$RUN/logs/npm-node-tools.log" 2>&1 \
    || die "npm ci (cluster/node/package-lock.json) failed; see $RUN/logs/npm-node-tools.log"
  touch "$stamp"
fi
echo "$NEWMAN"
