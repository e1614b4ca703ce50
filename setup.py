# cffi has no declarative pyproject key for cffi_modules, so this stays.
from setuptools import setup

setup(cffi_modules=["csrc/build_ffi.py:ffibuilder"])
