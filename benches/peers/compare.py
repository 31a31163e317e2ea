#!/usr/bin/env python3
"""Ratios of the peers' medians to ours, from one run's `batchsample bench --json` and
`peers.py --json` files: `compare.py OURS.json PEERS.json [MORE_PEERS.json]`. A ratio above 1 means we are faster."""
import json
import sys

ours = json.load(open(sys.argv[1]))
runs = [json.load(open(f)) for f in sys.argv[2:]]
peers = dict(device=runs[0]["device"], flashinfer="; ".join(r["flashinfer"] for r in runs),
             results=[x for r in runs for x in r["results"]])
mine = {}
processed = {}  # our `--processing all` cases
processed_raw = {}  # our `--processing all-raw` cases
for r in ours["results"]:
    c = r["case"]
    if c.get("kernels", "auto") != "auto":  # what a user gets, not the --kernels general baseline
        continue
    key = (c["batch"], c["vocab"], c["dtype"], c["mode"], c.get("drafts", 0))
    if c.get("processing", "none") == "none":
        mine[key] = r["median_us"]
    elif c["processing"] == "all":
        processed[key] = r["median_us"]
    elif c["processing"] == "all-raw":
        processed_raw[key] = r["median_us"]
print(f"device: {peers['device']}; {peers['flashinfer']}")
print(f"{'batch':>5} {'vocab':>7} {'dtype':<5} {'mode':<12} {'ours_us':>9} {'peer':<11} {'peer_us':>9} {'peer/ours':>9}")
for r in peers["results"]:
    key = (r["batch"], r["vocab"], r["dtype"], r["mode"], r.get("drafts", 0))
    if r["peer"] == "torch-processing":
        # PyTorch's processing, then our sampler, against our fused processed launch.
        if key in mine and key in processed:
            peer_us = r["median_us"] + mine[key]
            print(f"{r['batch']:>5} {r['vocab']:>7} {r['dtype']:<5} {r['mode']:<12} {processed[key]:>9.1f} "
                  f"{'torch-proc+':<11} {peer_us:>9.1f} {peer_us / processed[key]:>9.2f}")
        continue
    if r["peer"] == "torch-raw-logprobs":
        # Our processed launch plus vLLM's raw-logprobs pass, against our processed launch with
        # raw logprobs (the scoring launch).
        if key in processed and key in processed_raw:
            peer_us = r["median_us"] + processed[key]
            print(f"{r['batch']:>5} {r['vocab']:>7} {r['dtype']:<5} {r['mode']:<12} "
                  f"{processed_raw[key]:>9.1f} {'+torch-raw':<11} {peer_us:>9.1f} "
                  f"{peer_us / processed_raw[key]:>9.2f}")
        continue
    if key not in mine:
        continue
    print(f"{r['batch']:>5} {r['vocab']:>7} {r['dtype']:<5} {r['mode']:<12} {mine[key]:>9.1f} "
          f"{r['peer']:<11} {r['median_us']:>9.1f} {r['median_us'] / mine[key]:>9.2f}")
