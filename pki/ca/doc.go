// Package ca holds the files of Rampart's internal CA and the operations on
// them that need no running server: [Init] creates a root and an
// intermediate (ECDSA P-256), SSH host and user CA keys and a JWK
// provisioner key, all encrypted at rest with one password file, and writes
// pki.yaml next to them ([Config]); [Config.LoadProvisioner] opens the
// provisioner key that mints one-time tokens.
//
// The CA daemon itself lives in package server, which embeds smallstep's
// step-ca; this package deliberately does not, so that the token, revoke and
// ssh-sign verbs (and a host-only pki binary) stay small.
package ca
