"""pilot-tui's benchmark suite: ``python -m bench all|scan|e2e|throughput|ingest|startup|ui [--quick]``.

Each bench compares pilot-tui with a baseline measured in the same run, prints a table and writes
``bench/results/<name>.json`` (with the date and the machine). See ``bench/__main__.py``.
"""
