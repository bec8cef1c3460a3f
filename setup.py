"""Compiles the pure policy core (app/policy) and the planned Avro reader and writer
(app/codecs/avro_reader.py, avro_writer.py) with mypyc, which turns their typed Python into C,
and app/_acyclic.c, which takes the worker's cached states out of the cycle collector's sight.

Where no C compiler is found the modules stay as they are and run interpreted: same behaviour,
slower. `tact bench` says which. Left out: __init__.py, which checks that the builds are newer
than their sources, and valueclass.py (see there), so the domain values stay plain dataclasses.
"""

from pathlib import Path

from mypyc.build import mypycify
from setuptools import Extension, setup

SKIPPED = {"__init__.py", "valueclass.py"}
CORE = sorted(str(path) for path in Path("app/policy").glob("*.py") if path.name not in SKIPPED)
CODECS = ["app/codecs/avro_reader.py", "app/codecs/avro_writer.py"]

# No config file: the project's mypy settings (strictness, the pydantic plugin) are for checking
# all of app/, which `mypy app` does in the tests; compiling needs none of them.
extensions = mypycify(["--config-file=", *CORE, *CODECS], group_name="tact_core")
for extension in extensions:
    extension.optional = True  # a failed build leaves the interpreted core, not a failed install
extensions.append(Extension("app._acyclic", ["app/_acyclic.c"], optional=True))
setup(ext_modules=extensions)
