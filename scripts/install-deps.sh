#!/usr/bin/env bash
# Installs what the sandbox and the proxy need from Debian, and the npm packages (which bring
# the project's own Node.js LTS). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[install-deps] %s\n' "$*" >&2; }

# command -> Debian package that provides it
declare -A PACKAGES=(
  [ip]=iproute2 [nft]=nftables [iptables-legacy]=iptables [openssl]=openssl [curl]=curl
  [ping]=iputils-ping [setpriv]=util-linux [unshare]=util-linux [sysctl]=procps [pkg-config]=pkg-config
  [mmdebstrap]=mmdebstrap [iperf3]=iperf3 [ss]=iproute2
)
# file -> Debian package, for what is not a command (headers for cgo builds)
declare -A FILES=(
  [/usr/include/seccomp.h]=libseccomp-dev
)
missing=()
for file in "${!FILES[@]}"; do
  [[ -e "$file" ]] || missing+=("${FILES[$file]}")
done
for cmd in "${!PACKAGES[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGES[$cmd]}")
done
if ((${#missing[@]} > 0)); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    log "ERROR: need root to install ${missing[*]} (or install them yourself)"
    exit 1
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { log "ERROR: Go 1.26 is needed to build the sandbox binaries"; exit 1; }
command -v npm >/dev/null || { log "ERROR: npm is needed to install the project (and its Node.js LTS)"; exit 1; }

# npm ci only when node_modules is missing or older than the lock file.
if [[ ! -x node_modules/.bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "Node.js $(node_modules/.bin/node --version) ready"
