#!/usr/bin/env bash
# Throw-away PKI for the sidecar mTLS example, in ./certs/ (next to this script):
#
#   ca.pem, ca.key              the mesh's CA (ECDSA P-256, self-signed, CA_DAYS days)
#   frontend.pem, frontend.key  client certificate of the frontend's outbound sidecar:
#                               URI SAN spiffe://cluster.local/ns/shop/sa/frontend, clientAuth
#   cart.pem, cart.key          server certificate of the cart's inbound sidecar:
#                               URI SAN spiffe://cluster.local/ns/shop/sa/cart,
#                               DNS SAN cart.shop.svc.cluster.local, serverAuth
#
# Keys are ECDSA P-256 in PKCS#8 PEM. Works with OpenSSL 3.0 (Debian bookworm) and later.
# Usage: ./make-certs.sh            (overwrites certs/)
#        CA_DAYS=30 CERT_DAYS=7 ./make-certs.sh
set -euo pipefail

CA_DAYS=${CA_DAYS:-30}
CERT_DAYS=${CERT_DAYS:-7}
for v in CA_DAYS CERT_DAYS; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} < 1 || ${!v} > 30)); then
        echo "make-certs.sh: $v must be 1..30 days (got ${!v})" >&2
        exit 2
    fi
done
if ((CERT_DAYS > CA_DAYS)); then
    echo "make-certs.sh: CERT_DAYS ($CERT_DAYS) may not exceed CA_DAYS ($CA_DAYS)" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/certs"
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# An ECDSA P-256 private key, PKCS#8 PEM ("BEGIN PRIVATE KEY").
new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

serial() {
    echo "0x$(openssl rand -hex 16)"
}

# CA.
new_key "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$CA_DAYS" \
    -set_serial "$(serial)" \
    -subj "/O=Ringway example/CN=Ringway example mesh CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$out/ca.pem"

# A workload certificate signed by the CA: issue NAME CN EKU SAN.
issue() {
    local name=$1 cn=$2 eku=$3 san=$4
    new_key "$out/$name.key"
    openssl req -new -key "$out/$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
    cat >"$tmp/$name.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EXT
    openssl x509 -req -in "$tmp/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
        -set_serial "$(serial)" -days "$CERT_DAYS" -sha256 \
        -extfile "$tmp/$name.ext" -out "$out/$name.pem" 2>"$tmp/$name.log" ||
        { cat "$tmp/$name.log" >&2; exit 1; }
}

issue frontend frontend clientAuth \
    "URI:spiffe://cluster.local/ns/shop/sa/frontend"
issue cart cart serverAuth \
    "URI:spiffe://cluster.local/ns/shop/sa/cart, DNS:cart.shop.svc.cluster.local"

chmod 644 "$out"/*.pem
openssl verify -CAfile "$out/ca.pem" -purpose sslclient "$out/frontend.pem"
openssl verify -CAfile "$out/ca.pem" -purpose sslserver "$out/cart.pem"
echo "certificates in $out (CA valid $CA_DAYS days, workloads $CERT_DAYS days)"
