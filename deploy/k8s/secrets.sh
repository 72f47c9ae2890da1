#!/usr/bin/env bash
# Makes mailroom's Secrets in a namespace, one per service, with random
# values where mailroom chooses them; none of them is ever in git.
#
#   NAMESPACE=mailroom OPENAI_API_KEYS=sk-… \
#   GOOGLE_OAUTH_CLIENT_ID=… GOOGLE_OAUTH_CLIENT_SECRET=… deploy/k8s/secrets.sh
#
# A Secret that exists already is left alone (a new vault key would make
# every stored credential unreadable); delete it first to replace it.
#
#   nats-auth           the NATS users' passwords (read by the NATS servers)
#   mailroom-auth       NATS_URL (user auth), MAILROOM_VAULT_KEYS, MAILROOM_SERVICE_KEYS, MAILROOM_BOOTSTRAP_TOKEN
#   mailroom-ingest     NATS_URL (user ingest), MAILROOM_SERVICE_KEY, GOOGLE_OAUTH_CLIENT_ID/SECRET
#   mailroom-classifier NATS_URL (user classifier), MAILROOM_SERVICE_KEY, OPENAI_API_KEYS
#   mailroom-store      NATS_URL (user store), MAILROOM_SERVICE_KEY
#   mailroom-gateway    NATS_URL (user gateway), MAILROOM_SERVICE_KEY
#
# The database's Secret, mailroom-db-app, is CloudNativePG's (components/
# postgres); for an external Postgres make it yourself:
#   kubectl -n "$NAMESPACE" create secret generic mailroom-db-app --from-literal=uri='postgres://…'
set -euo pipefail
ns=${NAMESPACE:-mailroom}
nats=${NATS_HOST:-nats:4222}

rand() { head -c "${1:-24}" /dev/urandom | base64 | tr -d '/+=\n'; }
exists() { kubectl -n "$ns" get secret "$1" >/dev/null 2>&1; }
make_secret() { # name, then KEY=value…
  local name=$1; shift
  if exists "$name"; then echo "secret/$name exists: kept"; return; fi
  local args=()
  for kv in "$@"; do [ -n "${kv#*=}" ] && args+=(--from-literal="$kv"); done
  kubectl -n "$ns" create secret generic "$name" "${args[@]}" >/dev/null
  echo "secret/$name created"
}
# A NATS password is kept in two Secrets (the server's and the service's):
# reuse the server's when it exists.
nats_password() {
  local key=$1
  if exists nats-auth; then
    kubectl -n "$ns" get secret nats-auth -o "jsonpath={.data.$key}" | base64 -d
  else
    rand 24
  fi
}

ingest_pw=$(nats_password INGEST_PASSWORD)
classifier_pw=$(nats_password CLASSIFIER_PASSWORD)
store_pw=$(nats_password STORE_PASSWORD)
auth_pw=$(nats_password AUTH_PASSWORD)
gateway_pw=$(nats_password GATEWAY_PASSWORD)
declare -A key
for s in ingest classifier store gateway; do key[$s]="svc_$(rand 32)"; done
# Service keys already given to a service are kept, so auth's list matches.
for s in ingest classifier store gateway; do
  if exists "mailroom-$s"; then
    k=$(kubectl -n "$ns" get secret "mailroom-$s" -o jsonpath='{.data.MAILROOM_SERVICE_KEY}' | base64 -d || true)
    [ -n "$k" ] && key[$s]=$k
  fi
done

make_secret nats-auth INGEST_PASSWORD="$ingest_pw" CLASSIFIER_PASSWORD="$classifier_pw" STORE_PASSWORD="$store_pw" \
  AUTH_PASSWORD="$auth_pw" GATEWAY_PASSWORD="$gateway_pw"
make_secret mailroom-auth \
  NATS_URL="nats://auth:${auth_pw}@${nats}" \
  MAILROOM_VAULT_KEYS="k1:$(head -c 32 /dev/urandom | base64)" \
  MAILROOM_SERVICE_KEYS="ingest:${key[ingest]},classifier:${key[classifier]},store:${key[store]},gateway:${key[gateway]}" \
  MAILROOM_BOOTSTRAP_TOKEN="mr_$(rand 36)"
make_secret mailroom-ingest \
  NATS_URL="nats://ingest:${ingest_pw}@${nats}" \
  MAILROOM_SERVICE_KEY="${key[ingest]}" \
  GOOGLE_OAUTH_CLIENT_ID="${GOOGLE_OAUTH_CLIENT_ID:-}" \
  GOOGLE_OAUTH_CLIENT_SECRET="${GOOGLE_OAUTH_CLIENT_SECRET:-}"
make_secret mailroom-classifier \
  NATS_URL="nats://classifier:${classifier_pw}@${nats}" \
  MAILROOM_SERVICE_KEY="${key[classifier]}" \
  OPENAI_API_KEYS="${OPENAI_API_KEYS:-}"
make_secret mailroom-store \
  NATS_URL="nats://store:${store_pw}@${nats}" \
  MAILROOM_SERVICE_KEY="${key[store]}"
make_secret mailroom-gateway NATS_URL="nats://gateway:${gateway_pw}@${nats}" MAILROOM_SERVICE_KEY="${key[gateway]}"
echo "the admin API key: kubectl -n $ns get secret mailroom-auth -o jsonpath='{.data.MAILROOM_BOOTSTRAP_TOKEN}' | base64 -d"
