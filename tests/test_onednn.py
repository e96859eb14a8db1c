"""TensorFlow's oneDNN CPU kernels whatever the import order: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is
imported, so kerascnn sets it when it comes first and warns, once, when TensorFlow came first with the kernels off."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARNING = "TensorFlow was imported before kerascnn (`import keras` imports it) with its oneDNN CPU kernels off"


def run(script: str) -> subprocess.CompletedProcess:
    """`python -c script` without TF_ENABLE_ONEDNN_OPTS in its environment (the test process has kerascnn's)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_tensorflow_imported_first_with_onednn_off_warns_once_saying_what_to_set():
    """TF_ENABLE_ONEDNN_OPTS=0 while TensorFlow loads stands for a CPU without AVX-512, where that is the default."""
    done = run(
        "import os\n"
        "os.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'\n"
        "import keras\n"  # on the TensorFlow backend: TensorFlow is imported here
        "del os.environ['TF_ENABLE_ONEDNN_OPTS']\n"
        "import kerascnn\n"
        "from kerascnn import layers, models\n"
    )
    assert done.stderr.count(WARNING) == 1, done.stderr[-2000:]
    assert "`import kerascnn` before `import keras`, or set TF_ENABLE_ONEDNN_OPTS=1" in done.stderr


def test_the_readme_example_gives_tensorflow_the_onednn_setting_and_no_warning():
    """The README's first example used to import keras first: TensorFlow loaded before kerascnn set the variable."""
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    imports = "\n".join(line for line in example.splitlines() if line.startswith(("import ", "from ")))
    # records the variable as TensorFlow's import begins
    probe = (
        "import os, sys\n"
        "class Probe:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow':\n"
        "            seen.append(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))\n"
        "seen = []\n"
        "sys.meta_path.insert(0, Probe())\n"
    )
    done = run(f"{probe}{imports}\nprint('TensorFlow saw', seen[:1])\n")
    assert "TensorFlow saw ['1']" in done.stdout, (imports, done.stdout)
    assert WARNING not in done.stderr
