"""Stand-in for ansible-test's pip bootstrap script (get-pip.py), which it downloads from a host this
machine cannot reach. Like get-pip.py it installs pip into an empty virtual environment, but from
the pip wheel that the interpreter itself ships (ensurepip), and then the packages ansible-test asks
for (the pinned pip) from the configured package index. scripts/ansible-test-bootstrap.sh puts it
where ansible-test looks for its cached copy.
"""

import ensurepip
import glob
import os
import sys

# get-pip.py's own options; pip does not know them.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
wheels = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))
if not wheels:
    sys.exit("no bundled pip wheel in ensurepip: this Python was built without it")
sys.path.insert(0, wheels[-1])

from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", *args]))
