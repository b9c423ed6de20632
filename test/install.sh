#!/usr/bin/env bash
# install.sh: install what Rampart's tests need on a Debian 12 machine.
#
# Debian packages go through apt-get (root only). Go tools are built at pinned
# versions into $TOOLS_DIR (default ~/.cache/rampart/tools/bin, shared by clones), outside the main
# module's dependency graph. When not root and something is missing, it prints
# exactly what to install and exits non-zero.
set -euo pipefail

TOOLS_DIR=${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rampart/tools/bin}
mkdir -p "$TOOLS_DIR"

PEBBLE_VERSION=v2.10.1
STEP_CLI_VERSION=v0.29.0
STATICCHECK_VERSION=v0.8.2

# command -> Debian package
declare -A pkgs=(
	[nft]=nftables
	[ip]=iproute2
	[ssh]=openssh-client
	[sshd]=openssh-server
	[oathtool]=oathtool
	[asciinema]=asciinema
	[certbot]=certbot
	[tmux]=tmux
	[ping]=iputils-ping
	[runuser]=util-linux
	[pg_isready]=postgresql-client
	[sftp]=openssh-client
	[plink]=putty-tools
	[dbclient]=dropbear-bin
	[caddy]=caddy
	[ansible-playbook]=ansible-core
	[promtool]=prometheus
	[systemd-analyze]=systemd
	[python3]=python3
	[curl]=curl
	[openssl]=openssl
)
missing=()
for cmd in "${!pkgs[@]}"; do
	p=/usr/sbin/$cmd
	command -v "$cmd" >/dev/null 2>&1 || [ -x "$p" ] || missing+=("${pkgs[$cmd]}")
done
# paramiko for Debian's own python3 (not whatever python3 is first on PATH).
if ! /usr/bin/python3 -c 'import paramiko' >/dev/null 2>&1; then
	missing+=(python3-paramiko)
fi
# PostgreSQL server binaries live outside PATH on Debian.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
	missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
	# shellcheck disable=SC2207
	missing=($(printf '%s\n' "${missing[@]}" | sort -u))
	if [ "$(id -u)" -ne 0 ]; then
		echo "install.sh: missing Debian packages; as root run:" >&2
		echo "  apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "install.sh: apt-get install ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gotool() { # name module@version
	local name=$1 mod=$2 stamp="$TOOLS_DIR/.$1.version"
	if [ -x "$TOOLS_DIR/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$mod" ]; then
		return
	fi
	echo "install.sh: go install $mod"
	# Outside the main module: GOFLAGS cleared, run from a neutral directory.
	(cd / && GOFLAGS= GOBIN="$TOOLS_DIR" go install "$mod")
	echo "$mod" >"$stamp"
}
gotool pebble github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION
gotool pebble-challtestsrv github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION
gotool step github.com/smallstep/cli/cmd/step@$STEP_CLI_VERSION
gotool staticcheck honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION
echo "install.sh: tools ready in $TOOLS_DIR"
