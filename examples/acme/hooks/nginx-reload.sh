#!/bin/sh
# Deploy hook: check nginx's configuration, then reload it gracefully.
# acme-renew runs it after a renewed certificate is in place, with
# RAMPART_ACME_NAME, RAMPART_ACME_DOMAINS, RAMPART_ACME_FULLCHAIN, RAMPART_ACME_KEY set.
set -eu
nginx -t -q
if command -v systemctl >/dev/null 2>&1; then
	systemctl reload nginx
else
	rcctl reload nginx # OpenBSD
fi
echo "nginx reloaded for ${RAMPART_ACME_NAME:-?} (${RAMPART_ACME_DOMAINS:-})"
