// Package server is Rampart's CA daemon: it embeds smallstep's step-ca
// authority (github.com/smallstep/certificates) and serves step-ca's HTTP
// API, so the step CLI and package client both work against it.
//
// [New] turns a [ca.Config] into a running [Server]: bbolt store by default
// or PostgreSQL by DSN, 24 h leaves by default (5 minutes minimum), an
// optional name policy (allowed DNS names and IP ranges, through step's
// policy engine), Rampart role URI SANs (urn:rampart:role:<role>, checked
// against the configured roles), SSH user and host certificates, Prometheus
// metrics and an issuance audit log (provisioner, names, serial, lifetime,
// requester).
//
// One-time tokens are step-ca JWK provisioner tokens. step-ca records every
// used token id in the store, so a replay is refused across restarts and
// across replicas sharing one PostgreSQL database. Refusals are logged with
// step-ca's internal reason and answered with a message that says which
// (token used, expired, minted for other names, certificate revoked).
//
// Renewals, over mTLS or with a renew token after expiry, are checked here
// before step-ca sees them: against the name policy in force (step-ca copies
// the old names without one) and, for an expired certificate, against
// leaf.renewal_after_expiry_max (step-ca's allowRenewalAfterExpiry has no
// age limit).
//
// [ca.Config]: github.com/rampart-sec/rampart/pki/ca.Config
package server
