#!/bin/sh
# Reload hook for HAProxy, which wants certificate and key in one file:
#   bind :443 ssl crt /etc/haproxy/certs/rampart.pem ca-file /etc/rampart/tls/haproxy/root.pem verify optional
# pki renew --dir /etc/rampart/tls/haproxy --exec /etc/rampart/hooks/haproxy.sh
set -eu
dir=${PKI_DIR:-/etc/rampart/tls/haproxy}
out=/etc/haproxy/certs/rampart.pem
umask 077
tmp=$(mktemp "$out.XXXXXX")
cat "$dir/cert.pem" "$dir/key.pem" >"$tmp"
mv -f "$tmp" "$out"          # atomic: HAProxy never reads half a file
haproxy -c -q -f /etc/haproxy/haproxy.cfg
systemctl reload haproxy
