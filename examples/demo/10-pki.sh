# 10-pki.sh: Rampart's internal CA (pki serve) on loopback, and certificates
# for the demo's other daemons, obtained the way a real host does it: a
# one-time token minted on the CA, then pki bootstrap.
# Sourced by demo.sh (sees $DEMO, $BIN, start, next, wait_port).
#
# Leaves:
#   $DEMO/pki/                  the CA (pki.yaml, encrypted keys, bbolt store)
#   $DEMO/pki/certs/<name>/     key.pem, cert.pem (leaf + intermediate), root.pem, ca.url
#     blocklistd  DNS localhost, IP 127.0.0.1 (server)
#     agent       roles agent + reporter
#     admin       role admin
#     bastion     role reporter
#   $DEMO/pki/{ca,blocklistd,blocklistd-key,admin,admin-key}.pem
#                               symlinks in the flat layout 20-blocklistd.sh reads
pki_dir=$DEMO/pki
pki_port=${PKI_PORT:-9443}
pki_cfg=$pki_dir/pki.yaml
if [ ! -f "$pki_cfg" ]; then
	pki init --dir "$pki_dir" --name "Rampart Demo" --listen "127.0.0.1:$pki_port" --dns localhost --dns 127.0.0.1 \
		--metrics "127.0.0.1:${PKI_METRICS_PORT:-9473}" --audit-log audit.log >"$DEMO/pki-init.log"
fi
# A state directory from an older demo may name another metrics port.
sed -i "s/^metrics: .*/metrics: 127.0.0.1:${PKI_METRICS_PORT:-9473}/" "$pki_cfg"
start pki pki serve --config "$pki_cfg"
wait_port "127.0.0.1:$pki_port"
wait_port "127.0.0.1:${PKI_METRICS_PORT:-9473}"
PKI_URL=https://localhost:$pki_port
PKI_FINGERPRINT=$(pki fingerprint --config "$pki_cfg")
export PKI_URL PKI_FINGERPRINT PKI_CERTS=$pki_dir/certs

pki_demo_cert() { # pki_demo_cert NAME [pki token flags...]
	local name=$1 dir=$pki_dir/certs/$1
	shift
	if [ -f "$dir/cert.pem" ]; then
		# A rerun: renew if due (also after expiry: the CA allows renewal
		# after expiry); join again only if the CA refuses.
		pki renew --dir "$dir" >/dev/null 2>&1 && return 0
	fi
	pki bootstrap --ca-url "$PKI_URL" --fingerprint "$PKI_FINGERPRINT" --out "$dir" \
		--token "$(pki token "$name" --config "$pki_cfg" --ttl 5m "$@")" >/dev/null
}
pki_demo_cert blocklistd --san localhost --san 127.0.0.1
pki_demo_cert agent --san agent.localhost --role agent --role reporter
pki_demo_cert admin --san admin.localhost --role admin
pki_demo_cert bastion --san bastion.localhost --role reporter
ln -sfn root_ca.crt "$pki_dir/ca.pem"
ln -sfn certs/blocklistd/cert.pem "$pki_dir/blocklistd.pem"
ln -sfn certs/blocklistd/key.pem "$pki_dir/blocklistd-key.pem"
ln -sfn certs/admin/cert.pem "$pki_dir/admin.pem"
ln -sfn certs/admin/key.pem "$pki_dir/admin-key.pem"
echo "demo: pki issued certificates for blocklistd, agent, admin and bastion in $pki_dir/certs"
start pki-renew pki renew --daemon --dir "$pki_dir/certs/blocklistd" --textfile "$DEMO/pki-blocklistd.prom" \
	--metrics "127.0.0.1:${PKI_RENEW_METRICS_PORT:-9474}"
wait_port "127.0.0.1:${PKI_RENEW_METRICS_PORT:-9474}"

next "pki token web1 --config $pki_cfg --san web1.localhost --role agent     # a one-time token for a new host"
next "pki bootstrap --ca-url $PKI_URL --fingerprint $PKI_FINGERPRINT --out $DEMO/web1 --token \$(pki token web1 --config $pki_cfg --san web1.localhost --role agent)"
next "pki renew --dir $pki_dir/certs/agent --force --exec 'echo reloaded'"
next "step ca certificate web2 $DEMO/web2.crt $DEMO/web2.key -f --token \$(pki token web2 --config $pki_cfg) --ca-url $PKI_URL --root $pki_dir/root_ca.crt"
next "rm -f $DEMO/id_user*; ssh-keygen -q -t ed25519 -f $DEMO/id_user -N '' && pki ssh-sign --config $pki_cfg --user alice --key $DEMO/id_user.pub --ttl 5m"
next "tail -n 3 $pki_dir/audit.log; curl -s http://127.0.0.1:${PKI_METRICS_PORT:-9473}/metrics | grep '^rampart_pki'"
