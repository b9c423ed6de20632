#!/usr/bin/env bash
# demo.sh: start every piece of Rampart on loopback with embedded defaults,
# print what to try next, and stop everything on Ctrl-C.
#
# Each piece adds a part, examples/demo/NN-<piece>.sh, sourced in order. A
# part starts its daemons with `start NAME CMD...` and adds lines to try with
# `next "..."`. Parts see $DEMO (the state directory) and $BIN.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=$root/bin
DEMO=${DEMO_DIR:-$root/demo-data}
mkdir -p "$DEMO"
export PATH=$BIN:$PATH

pids=()
names=()
tips=()
start() { # start NAME CMD...: run CMD in the background, logging to $DEMO/NAME.log
	local name=$1
	shift
	"$@" >"$DEMO/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
	echo "demo: started $name (pid $!, log $DEMO/$name.log)"
}
next() { tips+=("$*"); }
wait_port() { # wait_port HOST:PORT [seconds]
	local hp=$1 n=${2:-30}
	for ((i = 0; i < n * 10; i++)); do
		if (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "demo: nothing listens on $hp after ${n}s" >&2
	return 1
}
stop() {
	trap - INT TERM EXIT
	echo
	echo "demo: stopping ${names[*]:-nothing}"
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for f in "$here"/*-*.sh; do
		if declare -F "cleanup_$(basename "$f" .sh | cut -d- -f2-)" >/dev/null; then
			"cleanup_$(basename "$f" .sh | cut -d- -f2-)" || true
		fi
	done
	echo "demo: stopped; state kept in $DEMO"
}
trap stop INT TERM EXIT

parts=("$here"/[0-9][0-9]-*.sh)
for part in "${parts[@]}"; do
	[ -e "$part" ] || continue
	# shellcheck source=/dev/null
	source "$part"
done

echo
echo "Rampart demo is running (state in $DEMO). Try, in another terminal:"
if [ ${#tips[@]} -eq 0 ]; then echo "  (no pieces have joined the demo yet)"; fi
for t in "${tips[@]}"; do echo "  $t"; done
echo
echo "Ctrl-C stops everything."
if [ -n "${DEMO_ONESHOT:-}" ]; then exit 0; fi
while true; do sleep 3600 & wait $! ; done
