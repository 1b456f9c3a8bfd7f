#!/usr/bin/env bash
# CI step, after the main test suite: the real `ray up` + `ray submit cluster config sweeper/run.py`
# against this machine over SSH (tests/cluster/test_e2e_launcher.py). Runs as root on a fresh
# Debian/Ubuntu machine with the project installed (.ci/run first).
#
# Sets up, idempotently:
#   - openssh-server + rsync (apt-get), sshd listening on 127.0.0.1:22 only, key-only root login;
#   - a throwaway key $CROCODILE_E2E_SSH_KEY (default ~/.ssh/crocodile_e2e), authorized for root
#     with environment="HOME=$CROCODILE_E2E_NODE_HOME": sessions with this key see a scratch home
#     (the simulated cluster node's), so everything the launcher writes to "~" (the synced project,
#     ~/.bashrc hook, ~/.crocodile/secrets, ~/ray_bootstrap_*, ~/run.py) stays out of root's home;
#   - that node home's ~/.bashrc: this Python first on PATH, and RAY_TMPDIR (the node's Ray temp
#     dir, apart from any other Ray on the machine).
# then runs the e2e tests with CROCODILE_CLUSTER_E2E=1. Extra arguments go to pytest.
# An sshd this script started is stopped (by PID) at the end unless CROCODILE_E2E_KEEP_SSHD=1.
#
# Run it with the Python the project is installed in first on PATH (an activated virtualenv is
# fine): the simulated node gets that interpreter's own bin folder, not the base interpreter a venv
# links to. `cluster_e2e.sh --node-bashrc` only prints the node's ~/.bashrc (no root, no sshd);
# tests/cluster/test_e2e_script.py checks it from a virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

node_bashrc() {
    # The venv's bin (abspath, NOT realpath: a venv's python is a symlink to the base interpreter,
    # whose site-packages lack the project), then wherever `ray` is, then the node's own PATH.
    local pybin raybin
    pybin="$(python -c 'import os, sys; print(os.path.dirname(os.path.abspath(sys.executable)))')"
    raybin="$(dirname "$(command -v ray)")"
    cat <<EOF
# Simulated cluster node for tests/cluster (written by .ci/cluster_e2e.sh).
export PATH="$pybin:$raybin:\$PATH"
export RAY_TMPDIR="$1/t"
EOF
}

if [ "${1:-}" = --node-bashrc ]; then
    command -v ray >/dev/null || { echo "ray is not on PATH: install the project first (.ci/run)" >&2; exit 1; }
    node_bashrc "${CROCODILE_E2E_NODE_HOME:-/tmp/croc-node}"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "cluster_e2e.sh must run as root (it installs and configures sshd)" >&2
    exit 1
fi

KEY="${CROCODILE_E2E_SSH_KEY:-$HOME/.ssh/crocodile_e2e}"
NODE_HOME="${CROCODILE_E2E_NODE_HOME:-/tmp/croc-node}"

# ---- packages --------------------------------------------------------------------------------
if ! command -v rsync >/dev/null || [ ! -x /usr/sbin/sshd ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openssh-server openssh-client rsync >/dev/null
fi
command -v ray >/dev/null || { echo "ray is not on PATH: install the project first (.ci/run)" >&2; exit 1; }

# ---- throwaway key, authorized for root with the node home ------------------------------------
mkdir -p -m 700 "$HOME/.ssh"
[ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C crocodile-e2e -f "$KEY"
touch "$HOME/.ssh/authorized_keys"
chmod 600 "$HOME/.ssh/authorized_keys"
grep -v 'crocodile-e2e$' "$HOME/.ssh/authorized_keys" >"$HOME/.ssh/authorized_keys.new" || true
echo "environment=\"HOME=$NODE_HOME\" $(cat "$KEY.pub")" >>"$HOME/.ssh/authorized_keys.new"
mv "$HOME/.ssh/authorized_keys.new" "$HOME/.ssh/authorized_keys"

# ---- the simulated node's home: fresh each run -----------------------------------------------
rm -rf "$NODE_HOME"
mkdir -p "$NODE_HOME/t"
chmod 700 "$NODE_HOME"
node_bashrc "$NODE_HOME" >"$NODE_HOME/.bashrc"
printf '[ -f ~/.bashrc ] && . ~/.bashrc\n' >"$NODE_HOME/.profile"

# ---- sshd on 127.0.0.1:22, keys only ---------------------------------------------------------
mkdir -p /etc/ssh/sshd_config.d /run/sshd
cat >/etc/ssh/sshd_config.d/00-crocodile-e2e.conf <<'EOF'
# tests/cluster e2e (.ci/cluster_e2e.sh): loopback only, key-only root login, and the per-key
# environment="HOME=..." option of the throwaway key.
ListenAddress 127.0.0.1
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitUserEnvironment HOME
EOF
ssh-keygen -A >/dev/null
/usr/sbin/sshd -t
started_sshd=""
if [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then
    kill -HUP "$(cat /run/sshd.pid)"  # re-read the configuration
    sleep 1
else
    /usr/sbin/sshd
    started_sshd="$(cat /run/sshd.pid)"
fi
stop_sshd() {
    if [ -n "$started_sshd" ] && [ "${CROCODILE_E2E_KEEP_SSHD:-0}" != 1 ]; then
        kill "$started_sshd" 2>/dev/null || true
    fi
}
trap stop_sshd EXIT

ssh_home="$(ssh -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o IdentitiesOnly=yes -o ConnectTimeout=10 root@127.0.0.1 'echo $HOME')"
if [ "$ssh_home" != "$NODE_HOME" ]; then
    echo "ssh root@127.0.0.1 with $KEY gives HOME=$ssh_home, expected $NODE_HOME" >&2
    exit 1
fi

# ---- the tests -------------------------------------------------------------------------------
export CROCODILE_CLUSTER_E2E=1 CROCODILE_E2E_SSH_KEY="$KEY" CROCODILE_E2E_NODE_HOME="$NODE_HOME"
python -m pytest -q -m cluster_e2e tests/cluster "$@"
