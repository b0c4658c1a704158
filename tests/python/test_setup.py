"""ops/setup.sh: what it counts as libclang, the library bindgen loads to build RocksDB's bindings.

A machine with LLVM's packages has libclang-cpp (the C++ interface) without libclang itself; the
set-up must install libclang-dev there, or the first build fails in librocksdb-sys."""

from __future__ import annotations

import os
import subprocess
import tempfile
import unittest

SETUP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ops", "setup.sh")


def has_libclang(files: list[str]) -> bool:
    """Whether setup.sh finds libclang in a directory holding exactly `files`."""
    with tempfile.TemporaryDirectory() as lib:
        for name in files:
            open(os.path.join(lib, name), "w").close()
        env = dict(os.environ, VLEDGER_LIBCLANG_DIRS=lib)
        result = subprocess.run(
            ["bash", "-c", f'source "{SETUP}" && vledger_has_libclang'],
            env=env,
            capture_output=True,
            text=True,
        )
        return result.returncode == 0


class LibclangDetection(unittest.TestCase):
    def test_libclang_cpp_alone_is_not_libclang(self):
        self.assertFalse(has_libclang(["libclang-cpp.so.14", "libLLVM-14.so.1"]))

    def test_an_empty_directory_has_no_libclang(self):
        self.assertFalse(has_libclang([]))

    def test_versioned_and_plain_libclang_are_found(self):
        self.assertTrue(has_libclang(["libclang-14.so.1"]))
        self.assertTrue(has_libclang(["libclang-cpp.so.14", "libclang.so.1"]))
        self.assertTrue(has_libclang(["libclang.so"]))


if __name__ == "__main__":
    unittest.main()
