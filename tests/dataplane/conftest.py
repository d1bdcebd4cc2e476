"""The data plane tests use the seam's sample data."""

from tests.fulfilment.conftest import sample_files

__all__ = ["sample_files"]
