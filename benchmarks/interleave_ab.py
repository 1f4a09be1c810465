#!/usr/bin/env python
"""The up-projection's interleave, before and after, repeated: phase-2 bf16 training steps of both ResNet-50 networks
(192x640, batch 2, channels-last) with each branch as its own map (now) and sliced from one pixel-shuffled map
(before), alternating, with the machine's bf16 matmul rate before each round (shared CPUs drift).

    python benchmarks/interleave_ab.py [--rounds 8] > benchmarks/results/interleave_ab_cpu.log
"""
import argparse, json, statistics, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent)); sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from run import make_batch, adam, interleave_round, matmul_rate, machine
from mergedepth.model import DepthNet

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument('--rounds', type=int, default=8)
a = ap.parse_args()
dev = torch.device('cpu')
print(machine(dev))
torch.manual_seed(0)
nets = [DepthNet('resnet50', pretrained=False).to(dev, memory_format=torch.channels_last).train() for _ in range(2)]
opts, batch = adam(nets), make_batch(2, (192, 640), dev)
res = {'per_branch': [], 'sliced': [], 'matmul_bf16_gflops': []}
for r in range(a.rounds):
    res['matmul_bf16_gflops'].append(matmul_rate(dev, torch.bfloat16, 2048, 5))
    for k, v in interleave_round(nets, opts, batch, dev, 2).items(): res[k].append(v)
    print(f"round {r}: " + ', '.join(f"{k} {v[-1]:.3f}" for k, v in res.items()), flush=True)
print(json.dumps({k: dict(median=statistics.median(v), min=min(v), max=max(v)) for k, v in res.items()}))
