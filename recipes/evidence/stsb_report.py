"""The STS-B study's section of the tuned report: the zero-shot checkpoint as the trivial reference, the tuning
tables on the carved split, dev Spearman per arm over the final seeds, and whether fine-tuning learned at all.

The checkpoint was trained for sentence similarity, so its zero-shot cosine is the score to beat: a fine-tune
that does not clear it beyond the seed spread "did not learn", and SSE's comparison there supports no claim.
"""

from __future__ import annotations

import json
import os
import statistics

from recipes.evidence import study_stsb as study
from recipes.evidence.paired import mean_interval


def kept(record: dict, split: str, metric: str = "spearman") -> float:
    """A run's score on `split` at its kept epoch (the best on the carved split)."""
    return record["epoch_scores"][record["kept_epoch"] - 1][split][metric]


def read_zero_shot(records: str) -> dict | None:
    path = os.path.join(records, "zero-shot.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def learned(runs: dict, zero_shot: dict) -> tuple[str, tuple[float, float, float]] | None:
    """'learned' when the tuned baseline's dev Spearman minus the zero-shot one has a 95% CI above zero over
    the final seeds, else 'did not learn' (None until every final seed is recorded); with (mean, low, high)."""
    base = study.choose(runs, list(study.BASELINE_ARMS))
    if base is None or not all(seed in runs[base] for seed in study.FINAL_SEEDS):
        return None
    gains = [kept(runs[base][seed], "dev") - zero_shot["dev"]["spearman"] for seed in study.FINAL_SEEDS]
    interval = mean_interval(gains)
    return ("learned" if interval[1] > 0 else "did not learn"), interval


def tuning_table(runs: dict, arms: list[str]) -> list[str]:
    """One grid at the tuning seed: the carved Spearman of every epoch, the epoch kept, and dev (reported only)."""
    lines = [
        "| arm | lr | p | carved Spearman per epoch | kept epoch | dev Spearman (kept) | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    pick = study.choose(runs, arms)
    for arm in arms:
        record = runs.get(arm, {}).get(study.TUNING_SEED)
        if record is None:
            lines.append(f"| {arm} | | | not run yet | | | |")
            continue
        epochs = ", ".join(f"{100 * e['carved']['spearman']:.1f}" for e in record["epoch_scores"])
        lines.append(
            f"| {arm} | {record['learning_rate']:g} | {record['sse_p']:g} | {epochs} | {record['kept_epoch']} | "
            f"{100 * kept(record, 'dev'):.1f} | {'yes' if arm == pick else ''} |"
        )
    return lines


def arm_rows(runs: dict, zero_shot: dict) -> list[str]:
    """Dev Spearman and Pearson per arm, mean ± sd over the final seeds, under the trivial references."""
    lines = [
        "| arm | dev Spearman | dev Pearson | seeds | kept epochs | swap rate (of eligible tokens) |",
        "|---|---|---|---|---|---|",
        "| constant prediction (e.g. the training mean) | 0 (no ranking) | 0 | | | |",
        f"| zero-shot checkpoint (no training) | {100 * zero_shot['dev']['spearman']:.1f} | "
        f"{100 * zero_shot['dev']['pearson']:.1f} | | | |",
    ]
    for arms in (list(study.BASELINE_ARMS), list(study.SSE_ARMS)):
        arm = study.choose(runs, arms)
        seeds = [s for s in study.FINAL_SEEDS if arm and s in runs[arm]]
        if not seeds:
            continue
        records = [runs[arm][s] for s in seeds]

        def spread(metric: str) -> str:
            values = [100 * kept(r, "dev", metric) for r in records]
            sd = statistics.stdev(values) if len(values) > 1 else float("nan")
            return f"{statistics.fmean(values):.1f} ± {sd:.1f}"

        stats = [r["sse_stats"].get("input", {}) for r in records]
        swapped = sum(s.get("tokens_swapped", 0) for s in stats)
        eligible = sum(s.get("tokens_eligible", 0) for s in stats)
        rate = f"{swapped / eligible:.4f}" if eligible else ""
        lines.append(
            f"| {arm} | {spread('spearman')} | {spread('pearson')} | {','.join(map(str, seeds))} | "
            f"{','.join(str(r['kept_epoch']) for r in records)} | {rate} |"
        )
    return lines


def section(records: str) -> list[str]:
    """The report's STS-B section (empty when no zero-shot reference is recorded)."""
    zero_shot = read_zero_shot(records)
    if zero_shot is None:
        return []
    runs = study.load_records(records)
    lines = ["## STS-B (sentence embeddings, CoSENT, dev Spearman)", ""]
    verdict = learned(runs, zero_shot)
    if verdict:
        label, (mean, low, high) = verdict
        lines += [
            f"Tuned baseline: **{label}** (dev Spearman minus the zero-shot checkpoint's, seeds "
            f"{study.FINAL_SEEDS[0]}-{study.FINAL_SEEDS[-1]}: {100 * mean:+.1f} points [{100 * low:+.1f}, "
            f"{100 * high:+.1f}]).",
            "",
        ]
    lines += ["### Per arm (dev)", "", *arm_rows(runs, zero_shot), ""]
    lines += [
        "### Tuning the learning rate (carved split, seed 1)",
        "",
        f"The zero-shot checkpoint scores {100 * zero_shot['carved']['spearman']:.1f} on the carved split.",
        "",
        *tuning_table(runs, list(study.BASELINE_ARMS)),
    ]
    lines += ["", "### Tuning p (carved split, seed 1, the chosen learning rate)", ""]
    lines += [*tuning_table(runs, list(study.SSE_ARMS)), ""]
    if not study.comparison(records):
        lines += ["The fine-tunes are not complete yet (`python -m recipes.evidence.study_stsb run`).", ""]
    return lines
