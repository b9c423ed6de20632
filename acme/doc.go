// Package acme keeps public TLS certificates renewed from Let's Encrypt or
// any ACME CA, built on github.com/go-acme/lego/v4. It is what the
// acme-renew timer runs.
//
// # Deciding what is due
//
// A run reads every certificate from disk and decides, without the network
// when it can ([Renewer.Run]):
//
//   - after a failure, nothing happens until the backoff ends (30m, 1h, ... 24h);
//   - a missing certificate, or one whose names or key type no longer match
//     the config, is due;
//   - otherwise the CA's ARI renewal window (RFC 9773) decides. The window, a
//     renewal time drawn once inside it, and the CA's Retry-After are kept in
//     a small JSON state file ([State]), so the CA is asked at most once per
//     Retry-After and a run with nothing due makes no request at all;
//   - a CA without ARI falls back to the lifetime rule: due when a third of
//     the lifetime remains (half for certificates shorter than ten days).
//
// A renewal names the certificate it replaces (ARI "replaces") only when
// that certificate came from the account's current CA and account and the
// CA gave a window for it; a refused "replaces" is retried once without.
//
// # Deploy hooks after a crash
//
// The hooks a new certificate is owed are recorded in the state file
// (fsynced) before the certificate is switched in, and each success as it
// happens, so a run killed at any point is finished by the next one:
// exactly the hooks not recorded as done run, at least once each.
//
// # Writing atomically
//
// Every version of a certificate is written, fsynced, into its own
// directory, then published by renaming one symlink, DIR/current. Key,
// chain and combined file therefore change together: a process killed at
// any moment leaves the old set or the new set, never a key that does not
// match its certificate. Configured paths such as /etc/nginx/ssl/x.key are
// symlinks through DIR/current. Deploy hooks run after the swap, once per
// renewed certificate; the previous version is kept for rollback.
//
// # Running
//
// [Config.Lock] keeps two runs apart (flock). [Check] is the Nagios-style
// monitor over the files on disk; [List] shows what is next due.
// DNS-01 providers are injected ([DNSProviderFunc]) so only cmd/acme-renew
// links lego's DNS providers.
package acme
