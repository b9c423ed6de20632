#!/usr/bin/env bash
# demo.sh: start every piece of Rampart on loopback with embedded defaults,
# print what to try next, and stop everything on Ctrl-C (or SIGTERM).
#
# The first line printed is the `export PATH=...` to paste into the other
# terminal, so that the printed commands find pki, bastion and the tools.
# Each piece adds a part, examples/demo/NN-<piece>.sh, sourced in order. A
# part starts its daemons with `start NAME CMD...` and adds lines to try with
# `next "..."` (a line starting with "#" is a hint, not a command). Parts see
# $DEMO (the state directory) and $BIN. A part may define cleanup_<piece>,
# run when the demo stops.
#
# Environment: DEMO_DIR (state, default ./demo-data), DEMO_BIN (binaries,
# default ./bin), DEMO_NETNS (the agent's namespace, default rampart-demo),
# DEMO_ONESHOT=1 (stop right after printing), DEMO_PARTS (the NN of the
# parts to run, e.g. "10 20"; default all), and the *_PORT variables the
# parts read. test/operator runs every printed command.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${DEMO_BIN:-$root/bin}
DEMO=${DEMO_DIR:-$root/demo-data}
TOOLS_DIR=${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rampart/tools/bin}
mkdir -p "$DEMO"
export PATH=$BIN:$TOOLS_DIR:$PATH
echo "export PATH=$BIN:$TOOLS_DIR:\$PATH"

pids=()
names=()
tips=()
start() { # start NAME CMD...: run CMD in a session of its own, logging to $DEMO/NAME.log
	local name=$1
	shift
	# setsid: the daemon and its children (hooks, journalctl) form one
	# process group, stopped as one, and the terminal's Ctrl-C reaches
	# only this script, which stops them in order.
	setsid "$@" >"$DEMO/$name.log" 2>&1 </dev/null &
	pids+=($!)
	names+=("$name")
	echo "demo: started $name (pid $!, log $DEMO/$name.log)"
}
next() { tips+=("$*"); }
wait_port() { # wait_port HOST:PORT [seconds]
	local hp=$1 n=${2:-30} i
	for ((i = 0; i < n * 10; i++)); do
		if (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "demo: nothing listens on $hp after ${n}s" >&2
	return 1
}
# dead prints the first started process that is no longer running, with
# the last line of its log; status 1 when all are alive.
dead() {
	local i
	for ((i = 0; i < ${#pids[@]}; i++)); do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			echo "demo: ${names[$i]} (pid ${pids[$i]}) has exited: $(tail -n 1 "$DEMO/${names[$i]}.log" 2>/dev/null)" >&2
			echo "demo: its log is $DEMO/${names[$i]}.log" >&2
			return 0
		fi
	done
	return 1
}
stopping=
stop() {
	local status=$? i n
	[ -n "$stopping" ] && return
	stopping=1
	trap '' INT TERM # a second Ctrl-C must not interrupt the cleanup
	echo
	echo "demo: stopping ${names[*]:-nothing}"
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM -- "-${pids[$i]}" 2>/dev/null || true; done
	# Up to 3 s for a clean exit, then SIGKILL: the whole stop takes < 5 s.
	for ((n = 0; n < 30; n++)); do
		local alive=0
		for i in "${pids[@]}"; do kill -0 "$i" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -KILL -- "-${pids[$i]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
	local f piece
	for f in "$here"/[0-9][0-9]-*.sh; do
		piece=$(basename "$f" .sh | cut -d- -f2-)
		if declare -F "cleanup_$piece" >/dev/null; then "cleanup_$piece" || true; fi
	done
	echo "demo: stopped; state kept in $DEMO"
	exit "$status"
}
trap 'exit 130' INT
trap 'exit 143' TERM
trap stop EXIT

parts=("$here"/[0-9][0-9]-*.sh)
for part in "${parts[@]}"; do
	[ -e "$part" ] || continue
	nn=$(basename "$part" | cut -c1-2)
	if [ -n "${DEMO_PARTS:-}" ] && [[ " $DEMO_PARTS " != *" $nn "* ]]; then continue; fi
	# shellcheck source=/dev/null
	source "$part"
done

# A daemon that failed at start (a port in use, a bad certificate) is
# named here instead of leaving printed commands that cannot work.
sleep 1
if dead; then
	echo "demo: not all pieces are running; stopping" >&2
	exit 1
fi

echo
echo "Rampart demo is running (state in $DEMO). Try, in another terminal"
echo "(after the export PATH line above):"
if [ ${#tips[@]} -eq 0 ]; then echo "  # no pieces have joined the demo yet"; fi
for t in "${tips[@]}"; do echo "  $t"; done
echo
echo "Ctrl-C stops everything."
if [ -n "${DEMO_ONESHOT:-}" ]; then exit 0; fi
while :; do
	if dead; then
		echo "demo: stopping everything" >&2
		exit 1
	fi
	sleep 1
done
