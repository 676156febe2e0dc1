"""`make lab`: JupyterLab on notebooks/ from the project's environment, with its settings.

    python -m lib.lab [jupyter lab options, e.g. --no-browser --port 8890]

The project's JupyterLab defaults live in .jupyter/labconfig/default_setting_overrides.json:
a .py opens as a notebook (jupytext's "Jupytext Notebook" viewer), no news pop-up. Adding
.jupyter/ to JUPYTER_CONFIG_PATH applies them to this server only; nothing is written to the
user's ~/.jupyter, and a setting the user made there still wins. As root (a container), it
passes --allow-root, which JupyterLab asks for there. notebooks/jupytext.toml pairs
each .py with its .ipynb, so saving either writes both.
"""
import os
import sys

from lib.paths import REPO

SETTINGS = REPO / ".jupyter"


def lab_command(args=(), root=REPO / "notebooks"):
    """(argv, env) that start JupyterLab on `root` with the project's settings."""
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in [str(SETTINGS), env.get("JUPYTER_CONFIG_PATH")] if p)
    # JupyterLab refuses to start as root (containers run as root) unless told it may
    root_ok = ["--allow-root"] if os.geteuid() == 0 and "--allow-root" not in args else []
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *root_ok, *args]
    return argv, env


if __name__ == "__main__":
    argv, env = lab_command(sys.argv[1:])
    os.execve(argv[0], argv, env)  # becomes the server: Ctrl-C and signals reach it directly
