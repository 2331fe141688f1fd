"""Does a recorded run come out the same when rerun by another code version? Compares reruns with the ledger,
record by record: the kept epoch, every epoch's scores, and the carved and dev logit margins (4 decimals).

    python -m recipes.evidence.tuned_rerun_check --reruns docs/study/tuned/reruns

A rerun is written by `study_tuned.run_job` of the code under test (for instance the study's frozen commit)
into its own records folder; this module only reads both folders.
"""

from __future__ import annotations

import argparse
import json
import os

from recipes.evidence import tuned_plan as plan


def read_records(folder: str) -> dict[tuple[str, str, int], dict]:
    """(task, arm, seed) -> record, for every `<task>/<arm>/seed-<n>.json` under folder."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith("seed-") and name.endswith(".json"):
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    record = json.load(handle)
                found[(record["task"], record["arm"], record["seed"])] = record
    return found


def compare(recorded: dict, rerun: dict) -> dict:
    """How a rerun differs from its record: whether the kept epoch, the epoch scores and the margins are
    identical, and the largest difference of any epoch's score (any split, any metric) and of any margin."""
    margins = [
        abs(a - b) for key in ("carved_margins", "dev_margins") for a, b in zip(recorded[key], rerun[key], strict=True)
    ]
    scores = [
        abs(recorded_epoch[split][metric] - rerun_epoch[split][metric])
        for recorded_epoch, rerun_epoch in zip(recorded["epoch_scores"], rerun["epoch_scores"], strict=True)
        for split in recorded_epoch
        for metric in recorded_epoch[split]
    ]
    return {
        "recorded_by": f"{recorded['code']['commit'][:7]} / transformers {recorded['code']['transformers']}",
        "rerun_by": f"{rerun['code']['commit'][:7]} / transformers {rerun['code']['transformers']}",
        "same_epoch": recorded["kept_epoch"] == rerun["kept_epoch"],
        "same_scores": recorded["epoch_scores"] == rerun["epoch_scores"],
        "max_score_diff": max(scores),
        "max_margin_diff": max(margins),
        "identical": recorded["kept_epoch"] == rerun["kept_epoch"]
        and recorded["epoch_scores"] == rerun["epoch_scores"]
        and max(margins) == 0.0,
    }


def table(records: str, reruns: str) -> list[str]:
    """One row per rerun found in both folders."""
    ledger, again = read_records(records), read_records(reruns)
    lines = [
        "| task / arm / seed | recorded by | rerun by | kept epoch | every epoch's scores | largest score difference "
        "| largest margin difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(again):
        if key not in ledger:
            continue
        found = compare(ledger[key], again[key])
        lines.append(
            f"| {'/'.join(map(str, key))} | {found['recorded_by']} | {found['rerun_by']} | "
            f"{'same' if found['same_epoch'] else 'differs'} | {'identical' if found['same_scores'] else 'differ'} | "
            f"{found['max_score_diff']:.2g} | {found['max_margin_diff']:.4f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", default=plan.RECORDS_DIR, help="the ledger")
    parser.add_argument("--reruns", required=True, help="the reruns' records folder")
    args = parser.parse_args(argv)
    print("\n".join(table(args.records, args.reruns)))


if __name__ == "__main__":
    main()
