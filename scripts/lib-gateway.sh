# Starts a firehook gateway for the scripts that test it from outside: a fresh SQLite
# database in a temporary directory, a known bootstrap API key, a free port. Sourced;
# sets GATEWAY_URL and FIREHOOK_API_KEY and stops the gateway when the script exits.

cargo build --locked --quiet --bin firehook

GATEWAY_DIR=$(mktemp -d)
GATEWAY_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
export FIREHOOK_API_KEY="fh_check_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# Outbound webhooks go through a proxy on a closed local port: whatever subscription URL a
# test or the fuzzer creates, the gateway's sends stay on this machine and fail.
ALL_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 \
NO_PROXY= all_proxy= http_proxy= https_proxy= no_proxy= \
FIREHOOK__BOOTSTRAP__API_KEY="$FIREHOOK_API_KEY" \
FIREHOOK__DATABASE__URL="sqlite://$GATEWAY_DIR/firehook.db" \
FIREHOOK__SERVER__BIND="127.0.0.1:$GATEWAY_PORT" \
FIREHOOK__SERVER__WORKERS=2 \
RUST_LOG="${RUST_LOG:-warn}" \
  target/debug/firehook serve >"$GATEWAY_DIR/gateway.log" 2>&1 &
GATEWAY_PID=$!

stop_gateway() {
  kill "$GATEWAY_PID" 2>/dev/null && wait "$GATEWAY_PID" 2>/dev/null
  rm -rf "$GATEWAY_DIR"
}
trap stop_gateway EXIT

# Ready when /readyz answers 200, within 30 s.
for _ in $(seq 1 300); do
  if curl -fsS "$GATEWAY_URL/readyz" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
    echo "the gateway exited:" >&2
    cat "$GATEWAY_DIR/gateway.log" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS "$GATEWAY_URL/readyz" >/dev/null || { echo "the gateway did not become ready" >&2; exit 1; }
