// Package nftables enforces a Rampart blocklist with Linux nftables,
// talking netlink directly (github.com/google/nftables plus a hand-built
// element batch); no nft binary is needed at run time.
//
// # What it installs
//
// One table of the inet family (named "rampart" by default) and nothing
// else; the rest of the host's ruleset is never read or changed:
//
//	table inet rampart {
//		set addr4 { type ipv4_addr; }                  # single addresses: hash
//		set net4  { type ipv4_addr; flags interval; }  # wider ranges: interval tree
//		set addr6 { type ipv6_addr; }
//		set net6  { type ipv6_addr; flags interval; }
//		chain input {
//			type filter hook input priority filter - 10; policy accept;
//			ip saddr @addr4 counter drop
//			ip saddr @net4 counter drop
//			ip6 saddr @addr6 counter drop
//			ip6 saddr @net6 counter drop
//		}
//		# chain forward { ... } with Options.Forward
//	}
//
// With Options.Reject the rules reject with icmpx admin-prohibited
// instead of dropping.
//
// # Atomicity
//
// [Backend.Replace] sends one nfnetlink batch: it flushes the four sets
// and fills them again (or, when the table is missing or laid out by
// another version, deletes and recreates the table) and the kernel commits
// the batch as one transaction. Packets see the old set until the commit
// and the new one after; a process killed before the batch reaches the
// kernel leaves the old set. Element lists are split over many netlink
// messages (an attribute holds at most 64 KiB) inside that one batch.
//
// This package builds only on Linux.
package nftables
