"""The machinery behind the published evidence: studies, their reports, run comparison and the benchmark.

Run each driver from the repository root as `python -m recipes.evidence.<module> ...`.
"""
