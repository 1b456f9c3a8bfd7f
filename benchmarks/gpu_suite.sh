#!/usr/bin/env bash
# Every GPU check once, on a machine with a CUDA GPU, in under 8 minutes of GPU time:
#   1. benchmarks/throughput.py: DataLoader loop, eager and compiled steps, K = 1, 3, 6 stacked seeds,
#      batch 4096 and 32768 (throughput.json);
#   2. pytest -m gpu (pytest_gpu.json: counts, and the log beside it);
#   3. the Table 5 sweep at synthetic:kuairand scale, 6 seeds, `gpu` profile (each variant's 6 seeds as
#      one stacked model), timed end to end including Ray's start-up (table5_sweep.json).
# Results go to $OUT (default ./gpu_suite_out); summary.json gathers them.
#
#   bash benchmarks/gpu_suite.sh [--smoke-test]    # --smoke-test: tiny sizes, runs on CPU in ~2 minutes
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$PWD/gpu_suite_out}"
mkdir -p "$OUT"
SMOKE=0
for arg in "$@"; do
  case "$arg" in
    --smoke-test) SMOKE=1 ;;
    *) echo "error: unknown argument $arg (expected --smoke-test)" >&2; exit 2 ;;
  esac
done
if [ "$SMOKE" = 0 ] && ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: no CUDA GPU here; run with --smoke-test to check the script on CPU" >&2
  exit 2
fi
status=0

echo "== 1/3 throughput"
if [ "$SMOKE" = 1 ]; then
  python benchmarks/throughput.py --smoke-test --json "$OUT/throughput.json" || status=1
else
  python benchmarks/throughput.py --data synthetic:kuairand --batch-sizes 4096,32768 --seed-batches 1,3,6 \
    --steps 50 --json "$OUT/throughput.json" || status=1
fi

echo "== 2/3 pytest -m gpu"
python -m pytest -q -m gpu tests/model/test_gpu.py -p no:cacheprovider > "$OUT/pytest_gpu.log" 2>&1
code=$?
tail -3 "$OUT/pytest_gpu.log"
python - "$OUT" "$code" "$SMOKE" <<'PY'
import json, re, sys
out, code, smoke = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
text = open(f"{out}/pytest_gpu.log").read()
counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", text.splitlines()[-1] if text else "")}
json.dump({"exit_code": code, **counts}, open(f"{out}/pytest_gpu.json", "w"), indent=1)
# On a GPU every gpu test must run and pass; on CPU (--smoke-test) they all skip.
ok = code == 0 and (smoke or (counts.get("passed", 0) > 0 and not counts.get("skipped")))
sys.exit(0 if ok else 1)
PY
[ $? = 0 ] || status=1

echo "== 3/3 Table 5 sweep"
start=$(date +%s.%N)
if [ "$SMOKE" = 1 ]; then
  python sweeper/run.py --space table5_ablation --smoke-test --storage "$OUT/sweeps" --name table5 --wandb off \
    > "$OUT/table5_sweep.log" 2>&1
else
  python sweeper/run.py --space table5_ablation --profile gpu --storage "$OUT/sweeps" --name table5 --wandb off \
    > "$OUT/table5_sweep.log" 2>&1
fi
code=$?
end=$(date +%s.%N)
tail -5 "$OUT/table5_sweep.log"
python - "$OUT" "$code" "$start" "$end" <<'PY'
import glob, json, sys
import pandas as pd
out, code, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
files = glob.glob(f"{out}/sweeps/table5/results/*.parquet")
rows = pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()
json.dump({"exit_code": code, "wall_s": round(end - start, 1), "rows": len(rows),
           "rows_ok": int((rows["status"] == "ok").sum()) if len(rows) else 0,
           "variants": int(rows["variant"].nunique()) if len(rows) else 0}, open(f"{out}/table5_sweep.json", "w"), indent=1)
PY
[ "$code" = 0 ] || status=1

python - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
summary = {name: json.load(open(f"{out}/{name}.json")) for name in ("throughput", "pytest_gpu", "table5_sweep")
           if os.path.exists(f"{out}/{name}.json")}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(f"summary: {out}/summary.json")
PY
exit $status
