"""The checks that run a tool: `kubectl kustomize`, `docker-compose config -q` and
hadolint. Each returns (output, error lines); no error lines means the check passed."""

import os
import shutil
import subprocess

import yaml


def run(command, env=None):
    """Runs `command` offline; (stdout, error lines)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    except FileNotFoundError:
        return "", [f"`{command[0]}` is not installed ({hint(command[0])})"]
    except subprocess.TimeoutExpired:
        return "", [f"`{' '.join(command)}` did not finish in 300 s"]
    if done.returncode != 0:
        lines = (done.stderr + done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
        return done.stdout, lines
    return done.stdout, []


def hint(tool):
    """How to get a missing tool."""
    if tool == "kubectl":
        return "Debian: apt-get install kubernetes-client; scripts/test does it"
    return "scripts/setup-validate installs it into .venv/validate"


def kustomize(folder):
    """`kubectl kustomize DIR` with no cluster and no kubeconfig; (documents, errors)."""
    env = dict(os.environ, KUBECONFIG=os.devnull)
    out, errors = run([shutil.which("kubectl") or "kubectl", "kustomize", str(folder)], env)
    if errors:
        return [], errors
    docs = [doc for doc in yaml.safe_load_all(out) if doc is not None]
    if not docs:
        return [], ["kustomize built no object"]
    return docs, []


def compose(file, tools):
    """`docker-compose -f FILE config -q`: the Compose loader and schema, no daemon."""
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent")
    return run([str(tools / "docker-compose"), "-f", str(file), "config", "-q"], env)[1]


def hadolint(file, tools):
    """hadolint on a Dockerfile: any finding (even style) fails."""
    return run([str(tools / "hadolint"), "--no-color", str(file)])[1]
