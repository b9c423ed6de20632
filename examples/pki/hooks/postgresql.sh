#!/bin/sh
# Reload hook for PostgreSQL (>= 10 reloads TLS files on SIGHUP).
# postgresql.conf:
#   ssl = on
#   ssl_cert_file = '/etc/rampart/tls/postgresql/cert.pem'
#   ssl_key_file  = '/etc/rampart/tls/postgresql/key.pem'
#   ssl_ca_file   = '/etc/rampart/tls/postgresql/root.pem'   # clientcert=verify-full in pg_hba.conf
# The key must be owned by postgres (0600) or by root with group postgres
# (0640): bootstrap with --owner postgres, or --group postgres --key-mode 0640.
# pki renew --dir /etc/rampart/tls/postgresql --exec /etc/rampart/hooks/postgresql.sh
set -eu
if command -v systemctl >/dev/null; then
	systemctl reload postgresql
else
	su postgres -c "psql -qAtc 'SELECT pg_reload_conf()'"
fi
