// Package client is the host side of Rampart's internal CA: it joins a host
// with a one-time token ([Bootstrap]), keeps the certificate fresh ([Renew],
// [Renewer]) and hands servers and clients a [tls.Config] that always serves
// the newest certificate on disk ([Source]).
//
// It speaks step-ca's HTTP API (POST /1.0/sign, /1.0/renew, /1.0/ssh/sign,
// /1.0/revoke, GET /root/{sha}) with nothing but net/http and
// go.step.sm/crypto, and deliberately imports none of smallstep's CA server
// packages, so that small binaries such as blocklist-agent stay small.
//
// # Files
//
// A bootstrapped directory holds three PEM files, written atomically:
//
//	key.pem   the private key, generated on this host (mode 0600)
//	cert.pem  the leaf certificate followed by the intermediate
//	root.pem  the root certificate pinned at bootstrap by its SHA-256 fingerprint
//
// # Roles
//
// Rampart daemons authorize peers on URI SANs of the form
// urn:rampart:role:<role> (see [RoleURI]); a token minted with roles carries
// them in its "sans" claim and the CA copies them into the certificate.
package client
