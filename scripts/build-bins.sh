#!/usr/bin/env bash
# Builds the real binaries the sandbox runs (kube-apiserver, etcd, tailscaled, tailscale,
# headscale, ...) from pinned Go modules into a version-keyed cache outside the repository.
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

# Kubernetes commands for the control plane and the node, built together from one wrapper module
# (they share most of their dependency graph, so one build is far cheaper than five).
K8S_COMMANDS=(kube-apiserver kubelet kube-proxy kube-controller-manager kube-scheduler)
build_k8s() { build_k8s_commands "kubernetes-$K8S_VERSION" "15-30 min" "${K8S_COMMANDS[@]}"; }
# kubectl for the tests that drive the API server proxy as a tailnet user would (the machine's
# own kubectl is not the project's to rely on); its own directory, so adding it rebuilt nothing.
build_kubectl() { build_k8s_commands "kubectl-$K8S_VERSION" "3-6 min once kubernetes is built" kubectl; }
build_k8s_commands() {
  local dir=$1 cold=$2 work
  shift 2
  local K8S_COMMANDS=("$@")
  built "$dir" && { log "$dir: cached"; return; }
  log "kubernetes $K8S_VERSION (${K8S_COMMANDS[*]}): building (cold: $cold)"
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
    # `go get` alone can leave go.sum short of what the node commands import; importing them
    # from a file and tidying records every package's dependencies.
    {
      echo '//go:build tools'
      echo 'package tools'
      echo 'import ('
      local cmd
      for cmd in "${K8S_COMMANDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$cmd\""; done
      echo ')'
    } >tools.go
    go get "k8s.io/kubernetes@$K8S_VERSION"
    go mod tidy
    local pkgs=()
    for cmd in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
    go build -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36" \
      -o "$BIN_DIR/$dir/" "${pkgs[@]}"
  ) || fail "kubernetes: building k8s.io/kubernetes@$K8S_VERSION failed (see above)"
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

# Commands of the pinned tailscale.com module into $BIN_DIR/<dir>/, with the version stamped in as
# Tailscale's own builds do (GOARCH from the environment, for the arm64 cross build).
tailscale_build() {
  local dir=$1 v=${TAILSCALE_VERSION#v}
  shift
  mkdir -p "$BIN_DIR/$dir"
  wrapper_build tailscale.com "$TAILSCALE_VERSION" "$BIN_DIR/$dir/" \
    "-s -w -X tailscale.com/version.longStamp=$v -X tailscale.com/version.shortStamp=$v" "$@"
}

build_tailscale() {
  local arch=${1:-} dir="tailscale-$TAILSCALE_VERSION"
  # The host's build keeps the plain name; a cross build (for the arm64 proxy image) is suffixed.
  [[ -n "$arch" ]] && dir="$dir-$arch"
  built "$dir" && { log "tailscale $TAILSCALE_VERSION ${arch:-host}: cached"; return; }
  log "tailscaled + tailscale $TAILSCALE_VERSION ${arch:-host}: building (cold: 3-7 min)"
  GOARCH=${arch:-$(go env GOARCH)} tailscale_build "$dir" tailscale.com/cmd/tailscaled tailscale.com/cmd/tailscale
  finish "$dir"
}
build_tailscale_arm64() { build_tailscale arm64; }

# The Tailscale operator's proxy supervisor, from the same pinned module: bench/proxy-footprint.ts
# measures it beside tailscaled as the baseline for our proxy's footprint (nothing else runs it).
build_containerboot() {
  local dir="containerboot-$TAILSCALE_VERSION"
  built "$dir" && { log "containerboot $TAILSCALE_VERSION: cached"; return; }
  log "containerboot $TAILSCALE_VERSION: building (cold: 1-3 min once tailscale is built)"
  tailscale_build "$dir" tailscale.com/cmd/containerboot
  finish "$dir"
}

# The Tailscale operator itself, from the same pinned module: bench/operator-scale.ts runs it beside
# ours against the same API server and Headscale as the baseline of the scale figures (nothing
# else runs it).
build_k8s_operator() {
  local dir="k8s-operator-$TAILSCALE_VERSION"
  built "$dir" && { log "k8s-operator $TAILSCALE_VERSION: cached"; return; }
  log "k8s-operator $TAILSCALE_VERSION: building (cold: 4-10 min once tailscale is built)"
  tailscale_build "$dir" tailscale.com/cmd/k8s-operator
  # Its CRDs (ProxyClass, ProxyGroup, ...): it watches them, so they must exist before it starts.
  local src
  src=$(cd "$WORK_ROOT" && go mod download -json "tailscale.com@$TAILSCALE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -d "$src/cmd/k8s-operator/deploy/crds" ]] || fail "tailscale.com@$TAILSCALE_VERSION: no cmd/k8s-operator/deploy/crds"
  mkdir -p "$BIN_DIR/$dir/crds"
  cp "$src"/cmd/k8s-operator/deploy/crds/*.yaml "$BIN_DIR/$dir/crds/"
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

build_containerd() {
  local dir="containerd-$CONTAINERD_VERSION" m=github.com/containerd/containerd/v2
  built "$dir" && { log "containerd $CONTAINERD_VERSION: cached"; return; }
  log "containerd $CONTAINERD_VERSION: building (cold: ~10 min)"
  mkdir -p "$BIN_DIR/$dir"
  wrapper_build "$m" "$CONTAINERD_VERSION" "$BIN_DIR/$dir/" \
    "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
    "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
  finish "$dir"
}

build_runc() {
  local dir="runc-$RUNC_VERSION"
  built "$dir" && { log "runc $RUNC_VERSION: cached"; return; }
  log "runc $RUNC_VERSION: building (cold: ~3 min; cgo with libseccomp)"
  mkdir -p "$BIN_DIR/$dir"
  # runc's seccomp support is cgo against libseccomp (Debian's libseccomp-dev, from install-deps).
  CGO_ENABLED=1 GOFLAGS="$GOFLAGS -tags=seccomp,urfave_cli_no_docs" wrapper_build \
    github.com/opencontainers/runc "$RUNC_VERSION" "$BIN_DIR/$dir/runc" \
    "-s -w -X main.version=${RUNC_VERSION#v}" github.com/opencontainers/runc
  finish "$dir"
}

build_cni() {
  local dir="cni-plugins-$CNI_PLUGINS_VERSION" m=github.com/containernetworking/plugins
  built "$dir" && { log "CNI plugins $CNI_PLUGINS_VERSION: cached"; return; }
  log "CNI plugins $CNI_PLUGINS_VERSION: building (cold: ~1 min)"
  mkdir -p "$BIN_DIR/$dir"
  wrapper_build "$m" "$CNI_PLUGINS_VERSION" "$BIN_DIR/$dir/" "-s -w" \
    "$m/plugins/main/bridge" "$m/plugins/ipam/host-local" "$m/plugins/main/loopback" "$m/plugins/meta/portmap"
  finish "$dir"
}

# CoreDNS with only the plugins the sandbox's Corefile names (src/sandbox/cluster/cluster-dns.ts),
# from a main package of our own, as CoreDNS documents for custom builds: the stock binary
# compiles every plugin (cloud DNS SDKs, etcd, QUIC, dnstap, ...), which was most of its build time.
COREDNS_PLUGINS=(errors health ready kubernetes cache loop reload loadbalance)
build_coredns() {
  local dir="coredns-min-$COREDNS_VERSION" work plugin
  built "$dir" && { log "CoreDNS $COREDNS_VERSION: cached"; return; }
  log "CoreDNS $COREDNS_VERSION (${COREDNS_PLUGINS[*]}): building (cold: ~3 min)"
  mkdir -p "$BIN_DIR/$dir"
  work=$(mktemp -d -p "$WORK_ROOT")
  (
    cd "$work"
    go mod init example.local/coredns >/dev/null 2>&1
    {
      echo 'package main'
      echo 'import ('
      echo '	"github.com/coredns/coredns/coremain"'
      for plugin in "${COREDNS_PLUGINS[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/$plugin\""; done
      echo ')'
      echo 'func main() { coremain.Run() }'
    } >main.go
    go get "github.com/coredns/coredns@$COREDNS_VERSION"
    go mod tidy
    go build -ldflags "-s -w" -o "$BIN_DIR/$dir/coredns" .
  ) || fail "CoreDNS: building github.com/coredns/coredns@$COREDNS_VERSION failed (see above)"
  finish "$dir"
}

build_helm() {
  local dir="helm-$HELM_VERSION"
  built "$dir" && { log "helm $HELM_VERSION: cached"; return; }
  log "helm $HELM_VERSION: building (cold: ~4 min)"
  mkdir -p "$BIN_DIR/$dir"
  wrapper_build helm.sh/helm/v4 "$HELM_VERSION" "$BIN_DIR/$dir/helm" \
    "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" helm.sh/helm/v4/cmd/helm
  finish "$dir"
}

build_pebble() {
  local dir="pebble-$PEBBLE_VERSION"
  built "$dir" && { log "pebble $PEBBLE_VERSION: cached"; return; }
  log "pebble $PEBBLE_VERSION: building (cold: ~1 min)"
  mkdir -p "$BIN_DIR/$dir"
  wrapper_build github.com/letsencrypt/pebble/v2 "$PEBBLE_VERSION" "$BIN_DIR/$dir/" "-s -w" \
    github.com/letsencrypt/pebble/v2/cmd/pebble
  finish "$dir"
}

# Control plane first (every test needs it), then the node, then what only images and installs need.
# tailscale_arm64 is built by `make images` only (the arm64 proxy image), not for the tests;
# containerboot and k8s_operator by `make bench` only (baselines of bench/proxy-footprint.ts and
# bench/operator-scale.ts).
ALL_COMPONENTS="etcd tailscale headscale k8s kubectl containerd runc cni coredns helm pebble"
# One after another, not in parallel: the k8s and sqlite compiles each peak at several GiB.
total=$SECONDS
for component in ${BUILD_ONLY:-$ALL_COMPONENTS}; do
  timed "build_$component"
done
log "all binaries ready in $BIN_DIR ($((SECONDS - total)) s)"
