#!/bin/sh
# Deploy hook: validate HAProxy's configuration (which reads the combined
# key+chain file), then reload it without dropping connections.
set -eu
cfg=${HAPROXY_CFG:-/etc/haproxy/haproxy.cfg}
haproxy -c -q -f "$cfg"
if command -v systemctl >/dev/null 2>&1; then
	systemctl reload haproxy
else
	rcctl reload haproxy # OpenBSD
fi
echo "haproxy reloaded for ${RAMPART_ACME_NAME:-?}"
