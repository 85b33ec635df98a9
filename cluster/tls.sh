# TLS between the hosts of the local stack (docs/security.md, "Multi-host mode"; ADR-016).
# Sourced by cluster/common.sh. In multi-host mode (`NODE_ADDRESS=<address> make up`, make join)
# Postgres, Redis and Kafka take TLS clients only on the network, and Ray's own gRPC is mutual
# TLS, all with certificates of the stack's own CA: the head makes the CA and records it (its
# certificate and key) in the credentials file that machines which join copy; each machine makes
# the certificate of its own address in $RUN/tls; every client checks the server's certificate
# and address against the CA (Postgres sslmode=verify-full, Redis rediss://, Kafka SASL_SSL, Ray
# RAY_USE_TLS).
# shellcheck shell=bash
TLS_DIR="$RUN/tls"

# stack_tls -> STACK_TLS (on or off) and, when on, TLS_CA_FILE (the CA's certificate the clients
# check the servers against). Always on when this machine's or the head's address is one other
# machines reach; on loopback off unless asked for (`STACK_TLS=on make up`). make up remembers it
# in $RUN/node.env, as it does KAFKA_AUTH (a single box's `off` does not follow it onto the
# network).
stack_tls() {
  if [[ -z "${STACK_TLS:-}" && -r "$RUN/node.env" ]]; then
    STACK_TLS="$(recorded STACK_TLS "$RUN/node.env")"
    [[ "$STACK_TLS" == off ]] && on_network && STACK_TLS=""
  fi
  if [[ -z "${STACK_TLS:-}" ]]; then
    STACK_TLS=off && on_network && STACK_TLS=on
  fi
  # (not exported, as KAFKA_AUTH is not: each script decides again from its own addresses and
  # node.env; an exported `off` would follow a single box's tools onto another stack's network)
  case "$STACK_TLS" in
    on) TLS_CA_FILE="$TLS_DIR/ca.pem" ;;
    off)
      ! on_network || die "STACK_TLS=off: Postgres, Redis and Kafka on $HEAD_ADDRESS, an address" \
        "other machines reach, take TLS clients only; leave STACK_TLS unset (docs/security.md)"
      unset TLS_CA_FILE ;;
    *) die "STACK_TLS=$STACK_TLS: on or off" ;;
  esac
}

# url_path PATH -> PATH as a URL's query value (the characters that would end or split one)
url_path() { printf '%s' "$1" | sed -e 's/%/%25/g' -e 's/ /%20/g' -e 's/&/%26/g' -e 's/#/%23/g' -e 's/+/%2B/g'; }

# tls_san -> the server certificate's subjectAltName: this machine's address, and loopback (the
# head's own tools)
tls_san() {
  local san="IP:127.0.0.1,DNS:localhost"
  is_loopback "$NODE_ADDRESS" && { echo "$san"; return; }
  if [[ "$NODE_ADDRESS" =~ ^[0-9.]+$ || "$NODE_ADDRESS" == *:* ]]; then
    echo "IP:$NODE_ADDRESS,$san"
  else
    echo "DNS:$NODE_ADDRESS,$san"
  fi
}
# need_openssl -> stops the script when the openssl command is missing (make install installs it)
need_openssl() { command -v openssl >/dev/null || die "tls: the openssl command is missing (apt-get install openssl)"; }
# same_key CERT KEY -> 0 when KEY is the private key of CERT's public key
same_key() {
  [[ "$(openssl x509 -in "$1" -noout -pubkey 2>/dev/null)" == "$(openssl pkey -in "$2" -pubout 2>/dev/null)" ]]
}
# tls_server_ok -> 0 when this machine's certificate is the CA's, matches its key, names this
# machine's address and is valid for 30 days more
tls_server_ok() {
  local crt="$TLS_DIR/server.pem" want names
  [[ -s "$crt" && -s "$TLS_DIR/server.key" ]] || return 1
  openssl verify -CAfile "$TLS_DIR/ca.pem" "$crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$crt" -noout -checkend 2592000 >/dev/null 2>&1 || return 1
  same_key "$crt" "$TLS_DIR/server.key" || return 1
  # (a server's and, for Ray's mutual TLS, a client's)
  openssl x509 -in "$crt" -noout -ext extendedKeyUsage 2>/dev/null | grep -q 'Client Auth' || return 1
  names="$(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')"
  want="$(tls_san | sed -e 's/IP:/IPAddress:/g')"
  [[ "$names" == "$want" ]]
}
# tls_certs -> the CA (made once on the head, 10 years; a joining machine has the head's, from
# tls_ca_from_credentials) and this machine's certificate for its address (made again when the
# address changed or it expires within 30 days), keys mode 600 in $TLS_DIR (mode 700). Each pair
# is written to temporary files first and moved into place together.
tls_certs() {
  local ca="$TLS_DIR/ca.pem" key="$TLS_DIR/ca.key" tmp
  need_openssl
  private_dir "$TLS_DIR"
  if [[ ! -s "$ca" || ! -s "$key" ]]; then
    log "tls: making the stack's CA in $TLS_DIR"
    tmp="$(mktemp -d "$TLS_DIR/new.XXXXXX")"
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=orders local stack CA $(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout "$tmp/ca.key" -out "$tmp/ca.pem" >/dev/null 2>&1) || { rm -rf "$tmp"; die "tls: openssl could not make the CA"; }
    mv -f "$tmp/ca.key" "$key" && mv -f "$tmp/ca.pem" "$ca" && rm -rf "$tmp" "$TLS_DIR/server.pem"
  fi
  tls_server_ok && return 0
  log "tls: this machine's certificate for $(tls_san)"
  tmp="$(mktemp -d "$TLS_DIR/new.XXXXXX")"
  (umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$NODE_ADDRESS" -keyout "$tmp/server.key" -out "$tmp/server.csr" >/dev/null 2>&1 \
    && openssl x509 -req -in "$tmp/server.csr" -CA "$ca" -CAkey "$key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
      -days 825 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$(tls_san)") \
      -out "$tmp/server.pem" >/dev/null 2>&1) || { rm -rf "$tmp"; die "tls: openssl could not make this machine's certificate"; }
  mv -f "$tmp/server.key" "$TLS_DIR/server.key" && mv -f "$tmp/server.pem" "$TLS_DIR/server.pem" && rm -rf "$tmp"
}
# tls_mark -> what a server of this machine serves with: `off`, or `on` and a digest of the CA's
# and this machine's certificate. Redis and Ray record it at their start (tls_marked, tls_mark_set):
# one started with another (TLS switched, a certificate made again) is started again.
tls_mark() {
  if [[ "$STACK_TLS" != on ]]; then echo off; return; fi
  printf 'on %s\n' "$(cat "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" 2>/dev/null | sha256sum | cut -c1-64)"
}
tls_marked() {
  local recorded
  recorded="$(cat "$RUN/pids/$1.tls" 2>/dev/null || echo off)" # (started before marks: no TLS)
  [[ "$recorded" == "$(tls_mark)" ]]
}
tls_mark_set() { tls_mark >"$RUN/pids/$1.tls"; }
# tls_ca_lines -> the credentials file's TLS_CA_CERT and TLS_CA_KEY lines (the CA's certificate
# and key, base64 on one line each; the key a secret like the file's passwords: with it a joining
# machine makes the certificate of its own address), none without TLS
tls_ca_lines() {
  [[ "$STACK_TLS" == on ]] || return 0
  printf 'TLS_CA_CERT=%s\nTLS_CA_KEY=%s\n' "$(base64 -w0 "$TLS_DIR/ca.pem")" "$(base64 -w0 "$TLS_DIR/ca.key")"
}
# tls_from_credentials KEY FILE MARK FROM -> FILE (mode 600) from KEY's base64 value, the
# environment's (FROM `env`) or the credentials file's (`file`); it must hold MARK
tls_from_credentials() {
  local key="$1" file="$2" mark="$3" b64="" tmp where="$CREDENTIALS_FILE"
  if [[ "$4" == env ]]; then b64="${!1:-}" where="the environment"
  elif [[ -r "$CREDENTIALS_FILE" ]]; then b64="$(sed -n "s/^$key=//p" "$CREDENTIALS_FILE" | tail -n 1)"; fi
  [[ -n "$b64" ]] || die "$key is not in $where: the head's services take TLS clients only; copy" \
    "its .run/credentials.env again (written by a make up of this version)"
  tmp="$(umask 077 && mktemp "$file.XXXXXX")"
  printf '%s' "$b64" | base64 -d >"$tmp" 2>/dev/null && grep -q -- "$mark" "$tmp" \
    || { rm -f "$tmp"; die "$key is not what it should be (no '$mark')"; }
  mv -f "$tmp" "$file"
}
# tls_ca_from_credentials -> on a machine that joins: the head's CA in $TLS_DIR, from TLS_CA_CERT
# and TLS_CA_KEY (both from the environment when it gives the certificate, else both from the
# copied credentials file), checked to be one pair, then this machine's certificate (tls_certs)
tls_ca_from_credentials() {
  local from=file
  [[ "$STACK_TLS" == on ]] || return 0
  need_openssl
  [[ -z "${TLS_CA_CERT:-}" ]] || from=env # (both from one place)
  private_dir "$TLS_DIR"
  tls_from_credentials TLS_CA_CERT "$TLS_DIR/ca.pem" '-----BEGIN CERTIFICATE-----' "$from"
  tls_from_credentials TLS_CA_KEY "$TLS_DIR/ca.key" 'PRIVATE KEY-----' "$from"
  same_key "$TLS_DIR/ca.pem" "$TLS_DIR/ca.key" || die "TLS_CA_CERT and TLS_CA_KEY are not one pair:" \
    "copy the head's .run/credentials.env again"
  tls_certs
}
# tls_localize_credentials -> on a machine that joins, with TLS: its own copy of the head's
# credentials file ($RUN/credentials.env) names this machine's CA file in its URLs, not the head's
# (the tools that read the file, core/settings.py, connect as this machine's Ray processes do); a
# file elsewhere (the namespace harness's hosts share the head's) is left alone
tls_localize_credentials() {
  local tmp key keys=(DATABASE_URL MIGRATION_DATABASE_URL REDIS_URL KAFKA_SSL_CAFILE)
  [[ "$STACK_TLS" == on && -w "$CREDENTIALS_FILE" ]] || return 0
  [[ "$(realpath -m "$CREDENTIALS_FILE")" == "$(realpath -m "$RUN/credentials.env")" ]] || return 0
  tmp="$(umask 077 && mktemp "$CREDENTIALS_FILE.XXXXXX")"
  grep -v -E "^($(IFS='|'; echo "${keys[*]}"))=" "$CREDENTIALS_FILE" >"$tmp" || true
  for key in "${keys[@]}"; do
    [[ -z "${!key:-}" ]] || printf '%s=%s\n' "$key" "${!key}" >>"$tmp"
  done
  replace_if_changed "$tmp" "$CREDENTIALS_FILE"
}
# ray_tls_env -> the variables of Ray's mutual TLS (every gRPC server and client of Ray: GCS,
# raylets, workers, agents, drivers), one per line, with this machine's certificate; none without
# TLS
ray_tls_env() {
  [[ "$STACK_TLS" == on ]] || return 0
  printf '%s\n' RAY_USE_TLS=1 "RAY_TLS_SERVER_CERT=$TLS_DIR/server.pem" \
    "RAY_TLS_SERVER_KEY=$TLS_DIR/server.key" "RAY_TLS_CA_CERT=$TLS_DIR/ca.pem"
}
