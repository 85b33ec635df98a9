# TLS between the hosts of the local stack (docs/security.md, "Multi-host mode"; ADR-016).
# Sourced by cluster/common.sh. In multi-host mode (`NODE_ADDRESS=<address> make up`, make join)
# Postgres, Redis and Kafka take TLS clients only on the network, with a certificate of the
# stack's own CA: the head makes the CA and its server certificate in $RUN/tls and records the
# CA's certificate in the credentials file that machines which join copy; every client checks the
# server's certificate and address against it (Postgres sslmode=verify-full, Redis rediss://,
# Kafka SASL_SSL). The CA's key never leaves the head.
# shellcheck shell=bash
TLS_DIR="$RUN/tls"

# stack_tls -> STACK_TLS (on or off) and, when on, TLS_CA_FILE (the CA's certificate the clients
# check the servers against). Always on when this machine's or the head's address is one other
# machines reach; on loopback off unless asked for (`STACK_TLS=on make up`). make up remembers it
# in $RUN/node.env, as it does KAFKA_AUTH (a single box's `off` does not follow it onto the
# network).
stack_tls() {
  if [[ -z "${STACK_TLS:-}" && -r "$RUN/node.env" ]]; then
    STACK_TLS="$(sed -n 's/^STACK_TLS=//p' "$RUN/node.env" | head -n 1)"
    [[ "$STACK_TLS" == off ]] && on_network && STACK_TLS=""
  fi
  if [[ -z "${STACK_TLS:-}" ]]; then
    STACK_TLS=off && on_network && STACK_TLS=on
  fi
  case "$STACK_TLS" in
    on) export STACK_TLS TLS_CA_FILE="$TLS_DIR/ca.pem" ;;
    off)
      ! on_network || die "STACK_TLS=off: Postgres, Redis and Kafka on $HEAD_ADDRESS, an address" \
        "other machines reach, take TLS clients only; leave STACK_TLS unset (docs/security.md)"
      export STACK_TLS && unset TLS_CA_FILE ;;
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
# tls_server_ok -> 0 when the server certificate is the CA's, names this machine's address and
# is valid for 30 days more
tls_server_ok() {
  local crt="$TLS_DIR/server.pem" want names
  [[ -s "$crt" && -s "$TLS_DIR/server.key" ]] || return 1
  openssl verify -CAfile "$TLS_DIR/ca.pem" "$crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$crt" -noout -checkend 2592000 >/dev/null 2>&1 || return 1
  names="$(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')"
  want="$(tls_san | sed -e 's/IP:/IPAddress:/g')"
  [[ "$names" == "$want" ]]
}
# tls_certs -> on the head: the CA (made once, 10 years) and a server certificate for this
# machine's address (made again when the address changed or it expires within 30 days), keys
# mode 600 in $TLS_DIR (mode 700)
tls_certs() {
  local ca="$TLS_DIR/ca.pem" key="$TLS_DIR/ca.key" csr="$TLS_DIR/server.csr"
  private_dir "$TLS_DIR"
  if [[ ! -s "$ca" || ! -s "$key" ]]; then
    log "tls: making the stack's CA in $TLS_DIR"
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=orders local stack CA $(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" \
      -keyout "$key" -out "$ca" >/dev/null 2>&1) || die "tls: openssl could not make the CA"
    rm -f "$TLS_DIR/server.pem"
  fi
  tls_server_ok && return 0
  log "tls: server certificate for $(tls_san)"
  (umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$NODE_ADDRESS" -keyout "$TLS_DIR/server.key" -out "$csr" >/dev/null 2>&1 \
    && openssl x509 -req -in "$csr" -CA "$ca" -CAkey "$key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
      -days 825 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$(tls_san)") \
      -out "$TLS_DIR/server.pem" >/dev/null 2>&1) || die "tls: openssl could not make the server certificate"
  rm -f "$csr"
}
# tls_ca_line -> the credentials file's TLS_CA_CERT line (the CA's certificate, base64 on one
# line; not a secret), empty without TLS
tls_ca_line() {
  [[ "$STACK_TLS" == on ]] || return 0
  printf 'TLS_CA_CERT=%s\n' "$(base64 -w0 "$TLS_DIR/ca.pem")"
}
# tls_ca_from_credentials -> on a machine that joins: $TLS_DIR/ca.pem from the head's TLS_CA_CERT
# (the environment's, else the copied credentials file's)
tls_ca_from_credentials() {
  local b64="${TLS_CA_CERT:-}" tmp
  [[ "$STACK_TLS" == on ]] || return 0
  [[ -n "$b64" || ! -r "$CREDENTIALS_FILE" ]] || b64="$(sed -n 's/^TLS_CA_CERT=//p' "$CREDENTIALS_FILE" | tail -n 1)"
  [[ -n "$b64" ]] || die "TLS_CA_CERT is not in $CREDENTIALS_FILE: the head's services take TLS clients" \
    "only; copy its .run/credentials.env again (written by a make up of this version)"
  private_dir "$TLS_DIR"
  tmp="$(mktemp "$TLS_DIR/ca.pem.XXXXXX")"
  printf '%s' "$b64" | base64 -d >"$tmp" 2>/dev/null && grep -q -- '-----BEGIN CERTIFICATE-----' "$tmp" \
    || { rm -f "$tmp"; die "TLS_CA_CERT in $CREDENTIALS_FILE is not a certificate"; }
  chmod 644 "$tmp" && mv -f "$tmp" "$TLS_DIR/ca.pem"
}
