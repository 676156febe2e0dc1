"""Where things are: the checkout, a study's definition by name or path, and a path as a
report shows it."""
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


def study_names(value):
    """The studies a notebook's study parameter names: one name or .toml path, or several
    separated by commas."""
    return [name.strip() for name in str(value or "").split(",") if name.strip()]


def shown(path):
    """A path as a report shows it: relative to the repo where possible (no machine's paths)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
