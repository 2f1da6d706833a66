#!/usr/bin/env bash
# Builds the real binaries the sandbox runs (kube-apiserver, etcd, tailscaled, tailscale,
# headscale) from pinned Go modules into a version-keyed cache outside the repository.
# A binary already in the cache is reused; nothing here is ever committed.
#
# Usage: scripts/build-bins.sh [--print-dir]
#   TAILNET_OPERATOR_CACHE  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/tailnet-operator)
set -euo pipefail

# Pins live in one file shared with the TypeScript sandbox (src/sandbox/binaries.ts).
# shellcheck source=pins.env
source "$(dirname "${BASH_SOURCE[0]}")/pins.env"

CACHE_ROOT=${TAILNET_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tailnet-operator}
BIN_DIR="$CACHE_ROOT/bin"

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$BIN_DIR"
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -p=2"
command -v go >/dev/null || { echo "build-bins: 'go' is not on PATH; install Go 1.26 first" >&2; exit 1; }

# Wrapper modules live in throw-away directories, removed on any exit.
WORK_ROOT=$(mktemp -d -t tailnet-operator-build.XXXXXX)
trap 'rm -rf "$WORK_ROOT"' EXIT

log() { printf '[build-bins] %s\n' "$*" >&2; }
fail() { printf '[build-bins] ERROR: %s\n' "$*" >&2; exit 1; }

# Each component lands in $BIN_DIR/<name>-<version>/ and is complete only once the
# directory's .done marker exists, so an interrupted build is redone, never half-used.
built() { [[ -f "$BIN_DIR/$1/.done" ]]; }
# The cold build time is kept beside the binaries for `make bench` to report.
BUILD_START=$SECONDS
finish() { echo $((SECONDS - BUILD_START)) >"$BIN_DIR/$1/.build-seconds"; touch "$BIN_DIR/$1/.done"; }
timed() { BUILD_START=$SECONDS; "$@"; log "  took $((SECONDS - BUILD_START)) s"; }

build_k8s() {
  local dir="kubernetes-$K8S_VERSION" work
  built "$dir" && { log "kube-apiserver $K8S_VERSION: cached"; return; }
  log "kube-apiserver $K8S_VERSION: building (cold: 10-20 min)"
  work=$(mktemp -d -p "$WORK_ROOT")
  mkdir -p "$BIN_DIR/$dir"
  (
    cd "$work"
    go mod init example.local/k8sbins >/dev/null 2>&1
    local modfile
    modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [[ -f "$modfile" ]] || fail "k8s.io/kubernetes@$K8S_VERSION: go.mod not served by the module proxy"
    # k8s.io/kubernetes points its staging modules at ./staging; a wrapper replaces each with
    # its published tag, because only the main module's replace directives count.
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" \
      | awk -v v="$K8S_STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}' >>go.mod
    grep -E '^godebug' "$modfile" >>go.mod || true
    if grep '=>' "$modfile" | grep -qv staging; then
      fail "k8s.io/kubernetes@$K8S_VERSION has non-staging replace directives; the wrapper needs them too"
    fi
    # Getting the package (not just the module) records every dependency it imports.
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
    go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36" \
      -o "$BIN_DIR/$dir/" k8s.io/kubernetes/cmd/kube-apiserver
  ) || fail "kube-apiserver: building k8s.io/kubernetes@$K8S_VERSION failed (see above)"
  finish "$dir"
}

# Builds packages of one module through a throw-away wrapper module. `go install pkg@version`
# is not usable here: it refuses modules with replace directives (etcd), and it asks the proxy
# for the module's version list to check deprecation, which the proxy refuses for some modules.
wrapper_build() {
  # out is given to `go build -o`: a directory with a trailing slash, or a file path.
  local module=$1 version=$2 out=$3 ldflags=$4 work
  shift 4
  work=$(mktemp -d -p "$WORK_ROOT")
  (
    cd "$work"
    go mod init example.local/wrapper >/dev/null 2>&1
    local pkg
    for pkg in "$@"; do go get "$pkg@$version"; done
    go build -ldflags "$ldflags" -o "$out" "$@"
  ) || fail "building $module@$version ($*) failed (see above); check that the version is served: go list -m -json $module@$version"
}

build_etcd() {
  local dir="etcd-$ETCD_VERSION"
  built "$dir" && { log "etcd $ETCD_VERSION: cached"; return; }
  log "etcd $ETCD_VERSION: building (cold: 2-4 min)"
  mkdir -p "$BIN_DIR/$dir"
  # The module root is the etcd main package; its require block pins the sibling modules.
  wrapper_build go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$BIN_DIR/$dir/etcd" "-s -w" go.etcd.io/etcd/server/v3
  finish "$dir"
}

build_tailscale() {
  local dir="tailscale-$TAILSCALE_VERSION" v=${TAILSCALE_VERSION#v}
  built "$dir" && { log "tailscale $TAILSCALE_VERSION: cached"; return; }
  log "tailscaled + tailscale $TAILSCALE_VERSION: building (cold: 4-7 min)"
  mkdir -p "$BIN_DIR/$dir"
  wrapper_build tailscale.com "$TAILSCALE_VERSION" "$BIN_DIR/$dir/" \
    "-s -w -X tailscale.com/version.longStamp=$v -X tailscale.com/version.shortStamp=$v" \
    tailscale.com/cmd/tailscaled tailscale.com/cmd/tailscale
  finish "$dir"
}

build_headscale() {
  local dir="headscale-$HEADSCALE_VERSION"
  built "$dir" && { log "headscale $HEADSCALE_VERSION: cached"; return; }
  log "headscale $HEADSCALE_VERSION: building (cold: 5-9 min)"
  mkdir -p "$BIN_DIR/$dir"
  wrapper_build github.com/juanfont/headscale "$HEADSCALE_VERSION" "$BIN_DIR/$dir/" "-s -w" \
    github.com/juanfont/headscale/cmd/headscale
  finish "$dir"
}

# One after another, not in parallel: the k8s and sqlite compiles each peak at several GiB.
total=$SECONDS
for component in ${BUILD_ONLY:-etcd tailscale headscale k8s}; do
  timed "build_$component"
done
log "all binaries ready in $BIN_DIR ($((SECONDS - total)) s)"
