// Package agent is the host side of Rampart's blocklist: it follows
// blocklistd and keeps this host's firewall enforcing what blocklistd
// decided, whatever happens to the network or the server.
//
// # How it follows
//
// [Agent.Run] first enforces the last good snapshot persisted in the state
// directory, before it talks to anyone: a host that reboots while
// blocklistd is down keeps dropping what it dropped before. Then it
// long-polls blocklistd with the version it holds. A full snapshot becomes
// one atomic [firewall.Backend.Replace]; a delta becomes one
// [firewall.Backend.Apply] (and a full Replace if the backend refuses the
// delta). Removals go first and additions after, and every entry still
// held that overlaps a removed one is added again, so a delta leaves the
// firewall exactly as a full Replace of the new entries would. Every set passes through the [firewall.Policy] first, so the
// allowlist, the host's own addresses and blocklistd's own address are
// never blocked whatever the server says.
//
// When blocklistd cannot be reached the agent backs off with jitter and
// keeps enforcing: nothing in this package ever flushes the firewall
// because of a network or server failure.
//
// # State directory
//
// The state directory holds snapshot.rbl (the last enforced server set
// with its version, written atomically after every change), status.json
// (what `blocklist-agent status` prints when the agent is not running) and
// agent.sock (a unix socket answering the live [Status] as JSON).
package agent
