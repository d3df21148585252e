# All metadata lives in setup.cfg; this shim keeps `pip install .` and
# legacy tooling working on setuptools versions without PEP 517 builds.
from setuptools import setup

setup()
