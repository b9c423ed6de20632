// Package ca is Rampart's internal certificate authority: it embeds
// smallstep's step-ca authority (github.com/smallstep/certificates) and
// serves step-ca's HTTP API, so the step CLI and [client] both work against
// it.
//
// [Init] creates a root and an intermediate (ECDSA P-256), SSH host and user
// CA keys and a JWK provisioner key, all encrypted at rest with one password
// file, and writes a pki.yaml next to them. [New] turns that configuration
// into a running [Server]: bbolt store by default or PostgreSQL by DSN, 24 h
// leaves by default (5 minutes minimum), an optional name policy (allowed
// DNS names and IP ranges, through step's policy engine), Rampart role URI
// SANs, SSH certificates, Prometheus metrics and an issuance audit log.
//
// One-time tokens are step-ca JWK provisioner tokens ([Server.Provisioner]
// mints them). step-ca records every used token id in the store, so a replay
// is refused across restarts and across replicas sharing one PostgreSQL.
//
// [client]: github.com/rampart-sec/rampart/pki/client
package ca
