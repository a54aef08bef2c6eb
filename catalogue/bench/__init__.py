"""Benchmarks (`catalogue bench …`): each reports ratios against a baseline measured in the
same run, on this machine, and writes JSON next to the printed table."""
