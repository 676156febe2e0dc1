"""Where things are: the checkout, and a study's definition by name or path."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUDIES = REPO / "studies"
# the folder a report is written to while its notebook runs (set by lib.pipeline for the
# kernel; lib.run.Run writes there), moved to its out_dir once the run succeeded
STAGING_ENV = "REPORT_STAGING_DIR"


def study_path(name_or_path):
    """Where a study's definition is: `studies/<name>.toml`, or the .toml path given
    (relative to the repo where it is not found from here: a notebook's cwd)."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        return STUDIES / f"{name_or_path}.toml"
    return REPO / path if not path.is_absolute() and not path.exists() else path
