"""Benchmark-only settings: the project's, with bench_urls adding a trivial ceiling endpoint."""

from evalproject.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
