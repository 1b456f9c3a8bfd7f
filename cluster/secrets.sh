#!/usr/bin/env bash
# Write the cluster's secrets from your environment into ~/.crocodile/secrets/ (mode 0600), which
# every cluster YAML syncs to the same path on each node (file_mounts). Run it before `ray up`,
# and again (then `ray up` again) after changing a key.
#
#   RAY_AUTH_TOKEN   required: the token every node and client uses (RAY_AUTH_MODE=token).
#                    Generate one with: export RAY_AUTH_TOKEN=$(openssl rand -hex 32)
#   WANDB_API_KEY    optional: W&B online logging from the head (the sweep driver)
set -euo pipefail

dir="${CROCODILE_SECRETS_DIR:-$HOME/.crocodile/secrets}"
if [ -z "${RAY_AUTH_TOKEN:-}" ]; then
    echo "RAY_AUTH_TOKEN is not set; e.g.: export RAY_AUTH_TOKEN=\$(openssl rand -hex 32)" >&2
    exit 1
fi
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
printf '%s' "$RAY_AUTH_TOKEN" >"$dir/auth_token"
printf '%s' "${WANDB_API_KEY:-}" >"$dir/wandb_api_key"
chmod 600 "$dir/auth_token" "$dir/wandb_api_key"
echo "wrote $dir/auth_token$([ -n "${WANDB_API_KEY:-}" ] && echo " and $dir/wandb_api_key")"
