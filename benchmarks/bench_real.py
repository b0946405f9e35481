"""Classifier figures on REAL recorded requests (tests/data/real/), side by side with TrackHAR.

Prints precision and recall per data type and overall, at field level, without and with each
dataset's device profile; then, per dataset, request-level recall (request, data type) of phonehome
and of TrackHAR 1.0.0 (npm `trackhar`, CC0; adapters + indicator matching) on the same HAR files.

TrackHAR is installed with npm into a cache directory (default ~/.cache/phonehome-bench/trackhar,
or $PHONEHOME_TRACKHAR_DIR) the first time; the test suite never needs npm or node. With
--no-trackhar (or without node/npm) only phonehome's figures are printed.

    python benchmarks/bench_real.py [--no-trackhar] [--mistakes]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.corpus.real_eval import (  # noqa: E402
    Dataset,
    coarse,
    findings,
    found_pairs,
    load,
    required_pairs,
    score_fields,
)

TRACKHAR_VERSION = "1.0.0"
RUNNER = """
import { readFileSync } from 'fs';
import { process as processHar } from 'trackhar';
const har = JSON.parse(readFileSync(process.argv[2], 'utf-8'));
const indicators = process.argv[3] ? JSON.parse(readFileSync(process.argv[3], 'utf-8')) : undefined;
const data = await processHar(har, indicators ? { indicatorValues: indicators } : {});
console.log(JSON.stringify(data));
"""

# TrackHAR property -> phonehome data type (coarse vocabulary of the comparison). Properties with no
# counterpart in DESIGN.md's vocabulary (screen size, carrier, language...) are left out.
TRACKHAR_TYPES = {
    "advertisingId": "device_id.advertising_id",
    "hashedAdvertisingId": "device_id.advertising_id",
    "deviceId": "device_id",
    "installationId": "device_id",
    "developerScopedId": "device_id",
    "browserId": "device_id",
    "otherIdentifiers": "device_id",
    "macAddress": "device_id",
    "userId": "user_id",
    "appId": "app.id",
    "model": "device.model",
    "osVersion": "device.os_version",
    "localIp": "network.local_ip",
    "latitude": "location.gps",
    "longitude": "location.gps",
    "viewedPage": "url",
    "websiteUrl": "url",
    "referer": "url",
    "pushNotificationToken": "token",
    "email": "contact.email",
    "searchTerm": "search_query",
}
# phonehome profile key -> TrackHAR indicator property (for TrackHAR's indicator matching)
INDICATORS = {
    "advertising_id": "advertisingId",
    "android_id": "deviceId",
    "email": "email",
    "urls": "viewedPage",
    "search_terms": "searchTerm",
}


def trackhar_dir() -> Path | None:
    """A directory with trackhar installed, installing it with npm if needed; None if impossible."""
    base = Path(
        os.environ.get("PHONEHOME_TRACKHAR_DIR", Path.home() / ".cache" / "phonehome-bench" / "trackhar")
    )
    if not (base / "node_modules" / "trackhar").is_dir():
        if not shutil.which("npm") or not shutil.which("node"):
            print("(node/npm not found: TrackHAR column skipped; apt-get install nodejs npm)")
            return None
        base.mkdir(parents=True, exist_ok=True)
        print(f"(installing trackhar@{TRACKHAR_VERSION} into {base} ...)", flush=True)
        done = subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(base),
             f"trackhar@{TRACKHAR_VERSION}"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            print(f"(npm install trackhar failed: {done.stderr.strip()[:300]}; TrackHAR column skipped)")
            return None
    (base / "run.mjs").write_text(RUNNER)
    return base


def har_of(dataset: Dataset, workdir: Path) -> Path:
    """The dataset as a HAR file: itself, or its flow dump exported by mitmproxy's own HAR writer."""
    if dataset.path.suffix == ".har":
        return dataset.path
    from mitmproxy import http, io
    from mitmproxy.addons.savehar import SaveHar

    with open(dataset.path, "rb") as handle:
        flows = [f for f in io.FlowReader(handle).stream() if isinstance(f, http.HTTPFlow)]
    out = workdir / f"{dataset.name}.har"
    out.write_text(json.dumps(SaveHar().make_har(flows)))
    return out


def trackhar_pairs(base: Path, har: Path, profile: dict | None, workdir: Path) -> set[tuple[int, str]]:
    """(request, coarse type) pairs TrackHAR reports for a HAR file."""
    command = ["node", str(base / "run.mjs"), str(har)]
    if profile:
        indicators = {INDICATORS[k]: v for k, v in profile.items() if k in INDICATORS}
        path = workdir / "indicators.json"
        path.write_text(json.dumps(indicators))
        command.append(str(path))
    done = subprocess.run(command, capture_output=True, text=True, cwd=base)
    if done.returncode != 0:
        raise RuntimeError(f"trackhar failed on {har.name}: {done.stderr.strip()[:300]}")
    pairs = set()
    for index, results in enumerate(json.loads(done.stdout)):
        for item in results or []:
            dtype = TRACKHAR_TYPES.get(item.get("property"))
            if dtype:
                pairs.add((index, dtype))
    return pairs


def print_fields(title: str, with_profile: bool, mistakes: bool) -> None:
    score = score_fields(with_profile=with_profile)
    precision, recall = score.overall()
    print(f"\n{title}: precision {precision:.3f}, recall {recall:.3f} (field level)")
    datasets, _ = load()
    held = [name for name, d in datasets.items() if d.held_out]
    if held:
        for label, names in (("development", [n for n in datasets if n not in held]), ("held out", held)):
            p, r = score_fields(names, with_profile=with_profile).overall()
            print(f"  {label} datasets ({', '.join(names)}): precision {p:.3f}, recall {r:.3f}")
    print(f"  {'data type':26} {'P':>5} {'R':>5} {'tp':>3} {'fp':>3} {'fn':>3}")
    for dtype, row in score.table().items():
        counts = f"{row['tp']:3} {row['fp']:3} {row['fn']:3}"
        print(f"  {dtype:26} {row['precision']:5.2f} {row['recall']:5.2f} {counts}")
    if mistakes:
        for line in score.mistakes:
            print(f"    {line}")


def print_side_by_side(use_trackhar: bool) -> None:
    datasets, _ = load()
    base = trackhar_dir() if use_trackhar else None
    print("\nRequest level, (request, data type) pairs found of those labelled; device ids other than the")
    print("advertising id count as one class. TrackHAR with a profile = its indicator matching.")
    header = f"  {'dataset':22} {'profile':7} {'labelled':>8} {'phonehome':>10} {'TrackHAR':>9}"
    print(header)
    totals = {False: [0, 0, 0], True: [0, 0, 0]}
    per_type: dict[tuple[bool, str], list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, dataset in datasets.items():
            wanted = required_pairs(name)
            har = har_of(dataset, workdir) if base else None
            for with_profile in (False, True):
                mine = found_pairs(name, findings(dataset, with_profile)) & set(wanted)
                theirs: set = set()
                if base and har:
                    theirs = trackhar_pairs(base, har, dataset.profile if with_profile else None, workdir)
                    theirs &= set(wanted)
                n = len(wanted)
                t_text = f"{len(theirs):4}/{n:<4}" if base else "      -  "
                flag = "yes" if with_profile else "no"
                print(f"  {name:22} {flag:7} {n:8} {len(mine):5}/{n:<4} {t_text}")
                totals[with_profile][0] += n
                totals[with_profile][1] += len(mine)
                totals[with_profile][2] += len(theirs)
                for pair in wanted:
                    row = per_type.setdefault((with_profile, coarse(pair[1])), [0, 0, 0])
                    row[0] += 1
                    row[1] += pair in mine
                    row[2] += pair in theirs
    for with_profile in (False, True):
        n, mine, theirs = totals[with_profile]
        flag = "with profile" if with_profile else "no profile"
        t_text = f", TrackHAR {theirs}/{n} = {theirs / n:.3f}" if base else ""
        print(f"  overall {flag}: phonehome {mine}/{n} = {mine / n:.3f}{t_text}")
    print(f"\n  per data type (no profile / with profile)   {'n':>3} {'phonehome':>10} {'TrackHAR':>9}")
    for (with_profile, dtype), (n, mine, theirs) in sorted(per_type.items()):
        flag = "yes" if with_profile else "no"
        t_text = f"{theirs:4}/{n:<4}" if base else "   -"
        print(f"  {dtype:26} profile {flag:3}         {n:3} {mine:5}/{n:<4} {t_text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-trackhar", action="store_true", help="phonehome's figures only")
    parser.add_argument("--mistakes", action="store_true", help="list every miss and false alarm")
    args = parser.parse_args()
    print_fields("Real corpus, no profile", False, args.mistakes)
    print_fields("Real corpus, with profile", True, args.mistakes)
    print_side_by_side(not args.no_trackhar)


if __name__ == "__main__":
    main()
