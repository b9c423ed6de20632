#!/bin/sh
# Reload hook for nginx: pki renew --dir /etc/rampart/tls/nginx --exec /etc/rampart/hooks/nginx.sh
# nginx.conf:
#   ssl_certificate     /etc/rampart/tls/nginx/cert.pem;   # leaf + intermediate
#   ssl_certificate_key /etc/rampart/tls/nginx/key.pem;
#   ssl_client_certificate /etc/rampart/tls/nginx/root.pem; # for mTLS
# nginx -t first: a broken config must not take the site down.
set -eu
nginx -t -q
if command -v systemctl >/dev/null; then systemctl reload nginx; else rcctl reload nginx; fi
