#!/bin/sh
# genserve-entrypoint SERVICE: serve one genserve service on 0.0.0.0:3000, or prepare the
# shared volumes (init). The gateway's gRPC listens on GENSERVE_GATEWAY_GRPC_PORT (3001).
set -eu
service="${1:-gateway}"
[ $# -gt 0 ] && shift
case "$service" in
  gateway) target="services.gateway:Gateway" ;;
  init)    exec genserve init "$@" ;;
  # any model kind: its service target from the registry (genserve.kinds)
  *) target="$(python -m genserve.kinds service "$service")" || exit 64 ;;
esac
export GENSERVE_GATEWAY_GRPC_HOST="${GENSERVE_GATEWAY_GRPC_HOST:-0.0.0.0}"
exec python -m bentoml serve "$target" --host 0.0.0.0 --port "${PORT:-3000}"
