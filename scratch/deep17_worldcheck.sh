#!/bin/bash
# loka-deep on the tiny and default (seed 0) worlds: main's head (16c884c) vs branch deep17
set -e
for preset in tiny default; do
  for side in base mine; do
    if [ $side = base ]; then root=/tmp/deep17-base; else root=/work/wt-deep17; fi
    out=/tmp/d17/world-$preset-$side
    rm -rf $out
    (cd $root && OMP_NUM_THREADS=1 PYTHONPATH=$root timeout 500 /work/main/.venv/bin/python -m loka unlearn --preset $preset --method loka-deep --out $out --json > $out.json 2>$out.err)
    echo "$preset $side $(sha256sum $out/*.safetensors | cut -c1-64)"
  done
done
