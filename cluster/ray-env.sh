# Environment of every Ray process and `ray submit` / `ray exec` command on a cluster node.
# The cluster YAMLs' setup_commands hook it into ~/.bashrc (the launcher runs every command in
# `bash --login -i`, which reads ~/.bashrc); ray-node.sh also sources it before `ray start`.
#
# Secrets never live in a cluster YAML or in this file. They reach each node as files through
# file_mounts (~/.crocodile/secrets/ on your machine -> the same path on every node), written from
# your environment by cluster/secrets.sh:
#   auth_token      the Ray token (your RAY_AUTH_TOKEN); required
#   wandb_api_key   your WANDB_API_KEY; optional (empty: no online W&B logging)

# The Python environment setup_commands create (absent on machines that bring their own Python).
if [ -f "$HOME/crocodile-venv/bin/activate" ] && [ "${VIRTUAL_ENV:-}" != "$HOME/crocodile-venv" ]; then
    . "$HOME/crocodile-venv/bin/activate"
fi

# Token authentication on every node and client, with the same token.
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH="$HOME/.crocodile/secrets/auth_token"

if [ -s "$HOME/.crocodile/secrets/wandb_api_key" ]; then
    WANDB_API_KEY="$(cat "$HOME/.crocodile/secrets/wandb_api_key")"
    export WANDB_API_KEY
fi
