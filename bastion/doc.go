// Package bastion is Rampart's SSH door: one entrance to the infrastructure
// that never lets anyone in on a key alone and leaves a tamper-evident
// trail.
//
// # How a login goes
//
// A client offers a public key (ed25519, ECDSA, RSA ≥ 2048 bits or a FIDO
// sk- key) or a user certificate signed by a trusted CA. When the key is
// verified the server answers with SSH "partial success" and offers only
// keyboard-interactive, where the second factor is asked: a TOTP code
// ([mfa.TOTPStore], never accepted twice) or Duo (push, phone call or
// passcode). Only then is the connection authenticated; until then no
// channel can be opened at all, and the channel handlers check again.
//
// # What a user can do
//
//   - jump: "ssh -J alice@bastion web1" opens a direct-tcpip channel, allowed
//     only to the targets listed for the user or the user's groups ([Policy.Resolve]);
//   - recorded session: "ssh -t alice@bastion web1", "ssh alice%web1@bastion"
//     or a pick from the numbered menu shown to a bare "ssh alice@bastion",
//     for targets in record mode, served by a [RecordFunc] (the
//     bastion/recorded package).
//
// Agent forwarding, remote forwarding, X11 and every other channel type are
// refused and audited. Failed logins are counted per source and per user by
// [guard.Guard], which slows, locks out and reports to blocklistd. Every
// decision lands in the hash-chained [audit.Log].
//
// [Server] wires it together; cmd/bastion only loads the config and builds
// the dependencies ([Setup] does both for it).
package bastion
