"""What a worker loads at start-up: heavy libraries only some requests use stay unloaded until
then, since every gunicorn worker carries what the master loaded (bench/ reports worker RSS)."""

from __future__ import annotations

import subprocess
import sys

# matplotlib with numpy is ~55 MB of each worker's memory; only the override-rate plot needs it.
LOADED_ON_FIRST_USE = ("matplotlib", "numpy")


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return {line.split(".")[0] for line in done.stdout.splitlines()}


def test_building_the_application_loads_no_plotting_library() -> None:
    loaded = _modules_after(
        "from cds_service import create_app\n"
        "create_app({'auth': False, 'database_url': 'sqlite://', 'patient_hash_key': 'k',"
        " 'log_level': 'ERROR'})"
    )
    assert "flask" in loaded  # the probe works: the application was built in that process
    assert not loaded & set(LOADED_ON_FIRST_USE)


def test_the_plot_module_still_loads_them_when_a_plot_is_drawn() -> None:
    loaded = _modules_after("import cds_service.informatics.override_plot")
    assert set(LOADED_ON_FIRST_USE) <= loaded
