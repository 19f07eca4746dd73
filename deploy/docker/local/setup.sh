#!/usr/bin/env bash
# Docker on a machine like the development one (Debian 12, root, no systemd, no registry
# reachable, HTTPS through a local certificate authority). Every step is idempotent; the
# Makefile's compose-test runs them. On a normal Docker host none of this is needed.
#
#   setup.sh engine      install docker.io and Debian's docker-compose; start dockerd
#   setup.sh images      choose the base images and torch's source, write them to
#                        build/docker/images.env: the public images where they can be
#                        pulled, else local ones (base); the PyTorch CPU index where it
#                        answers, else this host's wheel (wheels)
#   setup.sh base        local/debian:bookworm (debootstrap + docker import), then
#                        local/python:3.11-bookworm (the python:3.11-slim stand-in, with
#                        this host's extra CA certificates) and local/prometheus:bookworm
#   setup.sh wheels      torch for the image's build stage: this host's CPU wheel, copied
#                        into deploy/docker/wheels/ (git-ignored)
#   setup.sh build       build genserve:cpu from deploy/docker/Dockerfile with those choices
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=deploy/docker/local
WORK=build/docker            # scratch (git- and docker-ignored)
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

apt_install() {  # apt_install PACKAGE... (only those missing)
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
    || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

engine() {
  # docker.io: dockerd 20.10 (and tini, for `init: true`); docker-compose: Compose 1.29.
  apt_install docker.io docker-compose debootstrap
  if docker info >/dev/null 2>&1; then return 0; fi
  # No systemd here: dockerd in the background, its data root at Docker's default (never
  # inside a build context), its log beside it.
  log "starting dockerd"
  mkdir -p /var/log
  setsid nohup dockerd --data-root /var/lib/docker --pidfile /var/run/docker.pid \
    >>/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; /var/log/dockerd.log:"
  tail -20 /var/log/dockerd.log >&2
  return 1
}

debian_base() {
  have_image local/debian:bookworm && return 0
  local mirror rootfs="$WORK/rootfs"
  # The mirror apt uses here (deb822 or one-line sources).
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | sed -n '1s/ //gp' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "debootstrap bookworm from $mirror (about 90 s)"
  rm -rf "$rootfs" && mkdir -p "$WORK"
  $SUDO debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; return 1; }
  $SUDO rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  $SUDO tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - local/debian:bookworm >/dev/null
  $SUDO rm -rf "$rootfs"
}

base() {
  debian_base
  # The build context of the local images: their Dockerfiles and this host's extra CAs.
  local ctx="$WORK/local-context"
  rm -rf "$ctx" && mkdir -p "$ctx/ca"
  cp "$HERE"/*.Dockerfile "$ctx/"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  # Rebuilt when their Dockerfile or the CAs change (docker's cache makes it a no-op else).
  local name
  for name in python:3.11-bookworm prometheus:bookworm; do
    log "local/$name"
    docker build --force-rm -f "$ctx/${name%%:*}.Dockerfile" -t "local/$name" "$ctx" \
      >"$WORK/${name%%:*}.log" 2>&1 || { tail -30 "$WORK/${name%%:*}.log" >&2; return 1; }
  done
}

wheels() {
  # torch==2.13.0 (CPU) for the build stage: PyPI's is the CUDA build and the PyTorch
  # index is not reachable here, so the wheel pip's find-links holds on this host goes
  # into the build context.
  local dest=deploy/docker/wheels links
  links=$(pip config get global.find-links 2>/dev/null || echo "${PIP_FIND_LINKS:-}")
  for dir in $links; do
    for whl in "$dir"/torch-2.13.0+cpu-*.whl; do
      [ -f "$whl" ] || continue
      [ -f "$dest/$(basename "$whl")" ] || cp "$whl" "$dest/"
      return 0
    done
  done
  log "no torch 2.13.0 CPU wheel in pip's find-links ($links): the build will use TORCH_INDEX_URL"
}

PUBLIC_PYTHON=python:3.11-slim-bookworm       # the Dockerfile's default PYTHON_IMAGE
PUBLIC_PROMETHEUS=prom/prometheus:v2.55.1      # docker-compose.yml's default PROMETHEUS_IMAGE
TORCH_INDEX=https://download.pytorch.org/whl/cpu

pullable() { have_image "$1" || docker pull -q "$1" >/dev/null 2>&1; }

images() {
  local python=$PUBLIC_PYTHON prometheus=$PUBLIC_PROMETHEUS index=$TORCH_INDEX
  if ! pullable "$python" || ! pullable "$prometheus"; then
    log "no registry: local base images"
    base
    pullable "$python" || python=local/python:3.11-bookworm
    pullable "$prometheus" || prometheus=local/prometheus:bookworm
  fi
  if ! curl -fsS -o /dev/null --max-time 15 "$index/torch/" 2>/dev/null; then
    log "the PyTorch CPU index does not answer: torch from this host's wheel"
    index=""
    wheels
  fi
  mkdir -p "$WORK"
  printf 'export PYTHON_IMAGE=%s PROMETHEUS_IMAGE=%s TORCH_INDEX_URL=%s\n' \
    "$python" "$prometheus" "$index" >"$WORK/images.env"
  cat "$WORK/images.env" >&2
}

build() {
  # shellcheck disable=SC1091
  . "$WORK/images.env"
  local image=${GENSERVE_IMAGE:-genserve:cpu} started=$SECONDS
  mkdir -p build/compose-test
  log "docker build $image (log: build/compose-test/build.log)"
  if ! docker build --force-rm -f deploy/docker/Dockerfile --target cpu -t "$image" \
      --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" --build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL" \
      . >build/compose-test/build.log 2>&1; then
    tail -40 build/compose-test/build.log >&2
    return 1
  fi
  log "built $image in $((SECONDS - started)) s"
}

for step in "$@"; do "$step"; done
