#!/bin/sh
# Rebuild (or, with --check, verify) third_party/x/crypto: the non-test
# files of golang.org/x/crypto at the version go.mod's replace names, plus
# x-crypto-service-request.patch. See third_party/README.md.
set -eu
cd "$(dirname "$0")"
version=v0.58.0
src=$(cd ../.. && go mod download -json "golang.org/x/crypto@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/crypto"
chmod -R u+w "$tmp/crypto"
find "$tmp/crypto" -name '*_test.go' -delete
find "$tmp/crypto" -name testdata -type d -prune -exec rm -rf {} +
(cd "$tmp/crypto" && patch -s -p1 <"$OLDPWD/x-crypto-service-request.patch")
if [ "${1:-}" = --check ]; then
	diff -r "$tmp/crypto" crypto && echo "third_party/x/crypto: golang.org/x/crypto $version + patch, unchanged"
	exit
fi
rm -rf crypto
mv "$tmp/crypto" crypto
