#!/usr/bin/env bash
# Certificates and keys for the local control plane (called by scripts/cluster.py up).
#
#   scripts/k8s/pki.sh <dir> [extra SAN entries, e.g. IP:10.96.0.1]
#   NODE=<name>,<ip> scripts/k8s/pki.sh ...   also the certificates of a real node (below)
#
# Creates what is missing in <dir> (existing files are kept, so a restarted control plane keeps
# its CA and a kubeconfig written earlier stays valid):
#   ca.crt, ca.key               cluster CA: signs the serving cert and the client certs
#                                (kube-apiserver --client-ca-file)
#   apiserver.crt, .key          serving cert for 127.0.0.1 / localhost / kubernetes.default.svc...
#   admin.crt, admin.key         client cert CN=admin, O=system:masters (bypasses RBAC)
#   sa.key, sa.pub               service-account token signing key pair
# and with NODE=<name>,<ip>, client certs for each node component (RBAC knows these names):
#   kubelet                      system:node:<name> in system:nodes (Node authorizer)
#   kubelet-serving              the kubelet's serving cert for <ip> (the API server verifies it)
#   apiserver-kubelet-client     the API server's client cert towards the kubelet
#   controller-manager, scheduler, kube-proxy   system:kube-controller-manager, ...
#   coredns                      pinstack:coredns (a ClusterRole of cluster.py grants it reads)
#   local-path-provisioner       pinstack:local-path-provisioner (its ClusterRole: scripts/node.py)
#   prometheus                   pinstack:prometheus (lists and watches pods: scripts/node.py)
# Needs openssl (Debian: apt-get install openssl).
set -euo pipefail

DIR="${1:?usage: pki.sh <dir> [SAN ...]}"
shift
DAYS=3650
command -v openssl >/dev/null || { echo "pki.sh: openssl is missing: apt-get install openssl" >&2; exit 1; }
mkdir -p "$DIR"
chmod 700 "$DIR"
cd "$DIR"
umask 077

san="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
san="$san,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1"
for extra in "$@"; do san="$san,$extra"; done

if [ ! -s ca.crt ] || [ ! -s ca.key ]; then
    # a new CA invalidates every cert it signed
    find . -maxdepth 1 -name '*.crt' ! -name ca.crt -delete
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days "$DAYS" \
        -subj "/CN=pinstack-local-cluster-ca" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
fi

# sign <name> <subject> <extensions>: <name>.key + <name>.crt signed by the CA
sign() {
    local name="$1" subject="$2" ext="$3"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
    printf '%s\n' "$ext" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DAYS" \
        -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}

# the serving cert is re-issued when the SAN list changed (e.g. another service IP range)
if [ ! -s apiserver.crt ] || [ "$(cat apiserver.san 2>/dev/null)" != "$san" ]; then
    sign apiserver "/CN=kube-apiserver" \
        "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"
    printf '%s' "$san" >apiserver.san
fi

client() {
    [ -s "$1.crt" ] && return 0
    sign "$1" "$2" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
}

client admin "/O=system:masters/CN=admin"

if [ -n "${NODE:-}" ]; then
    node_name="${NODE%%,*}" node_ip="${NODE#*,}"
    client kubelet "/O=system:nodes/CN=system:node:$node_name"
    client apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    client controller-manager "/CN=system:kube-controller-manager"
    client scheduler "/CN=system:kube-scheduler"
    client kube-proxy "/CN=system:kube-proxy"
    client coredns "/CN=pinstack:coredns"
    client local-path-provisioner "/CN=pinstack:local-path-provisioner"
    client prometheus "/CN=pinstack:prometheus"
    if [ ! -s kubelet-serving.crt ] || [ "$(cat kubelet-serving.san 2>/dev/null)" != "$NODE" ]; then
        sign kubelet-serving "/CN=$node_name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$node_name,IP:$node_ip"
        printf '%s' "$NODE" >kubelet-serving.san
    fi
fi

if [ ! -s sa.key ] || [ ! -s sa.pub ]; then
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi
chmod 600 ./*.key
