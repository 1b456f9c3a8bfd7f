""".ci/cluster_e2e.sh run from a virtualenv: the simulated node's shell must get the venv's own
interpreter (where the project is installed), not the base interpreter the venv's python links to.
Runs the script's --node-bashrc step (no root, no sshd), then a login-like shell on that file."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from cluster_helpers import REPO

SCRIPT = REPO / ".ci" / "cluster_e2e.sh"


def test_the_node_shell_uses_the_virtualenvs_python(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    assert (venv / "bin" / "python").is_symlink()  # what realpath() used to follow out of the venv
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert purelib != sysconfig.get_paths()["purelib"]
    Path(purelib, "crocodile_in_venv.py").write_text("HERE = True\n")  # stands for the project installed there

    ray_dir = str(Path(sys.executable).parent)  # the `ray` CLI of this test's environment
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{ray_dir}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
           "CROCODILE_E2E_NODE_HOME": str(tmp_path / "node")}
    made = subprocess.run(["bash", str(SCRIPT), "--node-bashrc"], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    bashrc = tmp_path / "bashrc"
    bashrc.write_text(made.stdout)
    assert f'export RAY_TMPDIR="{tmp_path / "node"}/t"' in made.stdout

    # The node's shell: a bare environment (as sshd gives) plus that file.
    node = subprocess.run(["env", "-i", f"HOME={tmp_path / 'node'}", "PATH=/usr/bin:/bin", "bash", "-c",
                           f". {bashrc} && command -v ray && python -c 'import crocodile_in_venv, sys; print(sys.prefix)'"],
                          capture_output=True, text=True, timeout=60)
    assert node.returncode == 0, node.stdout + node.stderr
    assert node.stdout.strip().splitlines()[-1] == str(venv)
