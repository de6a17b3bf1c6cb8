#!/usr/bin/env bash
# dev-secret.sh creates (or updates) the development Secret "payments-api-dev"
# from deploy/.env, so that no secret is ever committed or written into values.
# Usage: deploy/dev-secret.sh [env-file] [namespace]
# An optional Clerk PEM key is taken from deploy/clerk-jwt-key.pem when present
# (a multi-line value cannot live in an env file).
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_file="${1:-$dir/.env}"
namespace="${2:-default}"
secret=payments-api-dev
keys='^(STRIPE_SECRET_KEY|STRIPE_WEBHOOK_SECRET|NEXTJS_WEBHOOK_SECRET|DATABASE_URL)=.'

if [[ ! -f "$env_file" ]]; then
  echo "dev-secret.sh: $env_file not found; copy deploy/.env.example to deploy/.env and fill it in" >&2
  exit 1
fi

# Only the secret variables go into the Secret; the rest of .env is plain config.
# DATABASE_URL is optional: the skaffold postgres profile reads it.
secret_env="$(mktemp)"
trap 'rm -f "$secret_env"' EXIT
grep -E "$keys" "$env_file" >"$secret_env" || true
for key in STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET NEXTJS_WEBHOOK_SECRET; do
  if ! grep -q "^$key=." "$secret_env"; then
    echo "dev-secret.sh: $key is missing or empty in $env_file" >&2
    exit 1
  fi
done

args=(--from-env-file="$secret_env")
if [[ -f "$dir/clerk-jwt-key.pem" ]]; then
  args+=(--from-file=CLERK_JWT_KEY="$dir/clerk-jwt-key.pem")
fi

kubectl create secret generic "$secret" --namespace "$namespace" "${args[@]}" \
  --dry-run=client --output yaml | kubectl apply --namespace "$namespace" --filename -
echo "Secret $namespace/$secret is up to date; pods roll on the next skaffold deploy."
