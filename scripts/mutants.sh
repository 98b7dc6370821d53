#!/usr/bin/env bash
# Mutation-tests the code that holds tandem's checks with cargo-mutants: each mutant
# (a check's condition flipped, a function's body replaced by a constant) is built and
# the tests that cover that file are run; a mutant the tests do not fail on is
# "missed". The scope is the checks, not the whole tree:
#   verify            core/src/verify.rs (every function but the reader pool's size)
#   exchange          core/src/exchange.rs: the seal, the footer, the completion record
#   ids               core/src/ids.rs: the ID file's header and range checks
#   executor          core/src/executor.rs: the worker's dependency failures and
#                     retries, the stage slots, rerun's object check (rerun_tasks)
#   rerun-check       core/src/stage.rs, core/src/error.rs: what rerun calls a
#                     finished child (a stage file's completion record, the result
#                     object through verify's check) and which errors lose a child
#   embedded-commit   dr/src/embedded.rs: the group commit path
#   api-guards        dr/src/api.rs: the write guard, the input checks and
#                     createBackup's empty body
#   drill-verdict     dr/src/drill/{verdict,check}.rs: the drill's comparisons (items,
#                     RPO, convergence) and its checks' verdict
#   drill-judges      dr/src/drill/{restore,failover}.rs: the restore and failover
#                     methods' judgements (the bad deploy, correct answers, items)
#   drill-waits       dr/src/drill/wait.rs: the waits those judgements rest on (a
#                     wait's deadline, its backoff, what it says it saw last)
#   post-backup       lambdas/src/post_backup.rs: the daily check of the plan's backup
#                     and its copy, and the failed check failing the invocation
# A mutant that survives and cannot be caught (it behaves exactly like the original)
# is explained in a comment where it lives and excluded below by name.
#
# Too slow for every CI run on 2 cores (docs/testing.md has the last timing): run
# it before resolving an issue that touches these files.
#
# usage: scripts/mutants.sh [SCOPE...]      (default: every scope above)
# env:   TANDEM_MUTANTS_TARGET  the build directory (default ~/.cache/tandem-mutants-target;
#                               kept apart so a run does not lock the everyday one)
#        TANDEM_MUTANTS_OUT     where mutants.out goes (default target/mutants)
# exit:  0 when no scope has a missed mutant (timeouts are hangs the suite did not
#        pass: listed, not failed), 1 otherwise (a missed mutant, or cargo-mutants
#        failing to run).
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
    cargo install --locked "cargo-mutants@$version"
fi
export CARGO_TARGET_DIR=${TANDEM_MUTANTS_TARGET:-$HOME/.cache/tandem-mutants-target}
out=${TANDEM_MUTANTS_OUT:-target/mutants}
mkdir -p "$out"

# name ; package ; files (space-separated) ; regex of the mutants in scope ; test targets
scopes=(
    "verify;tandem-core;core/src/verify.rs;^;--lib --test pipeline --test integrity"
    "exchange;tandem-core;core/src/exchange.rs;(replace|in) (seal|check_seal|seal_position|crc_with_blank_seal|read_footer|read_completion|completion_of|decode|Completion::check_identity)( |::|\$);--lib --test pipeline --test integrity"
    "ids;tandem-core;core/src/ids.rs;(replace|in) IdFile::(from_buffer|check_range|check_all)( |::|\$);--lib --test pipeline"
    "rerun-check;tandem-core;core/src/stage.rs core/src/error.rs;(replace|in) (RunContext::(check_completion|check_output|read_stage_file)|Error::(is_missing_or_corrupt|is_not_found))( |::|\$);--lib --test pipeline --test integrity"
    "executor;tandem-core;core/src/executor.rs;(replace|in) (worker|sleep_counted|State::take|rerun_tasks)( |::|\$);--lib --test pipeline"
    "embedded-commit;tandem-dr;dr/src/embedded.rs;(replace|in) (TableFile::commit_group|TableFile::apply_all|TableFile::writer|TableFile::next_ts|Writer<'_>::write|Committer::start|Committer::submit)( |::|\$);--lib"
    "api-guards;tandem-dr;dr/src/api.rs;(replace|in) (guard_writes|check_api_key|check_same_origin|check_json_content_type|object|string_field|id_param|create_backup|.*visit_map)( |::|\$);--test api --test serve"
    "drill-verdict;tandem-dr;dr/src/drill/verdict.rs dr/src/drill/check.rs;(replace|in) (Diff::is_empty|compare|differing_ids|settled|rpo|convergence|Checks::(push|get|failed|all_held))( |::|\$);--lib --test drill --features drill-aws"
    "post-backup;tandem-lambdas;lambdas/src/post_backup.rs;(replace|in) (handle|outcome|plan_points|existing_copy)( |::|\$);--lib"
    "drill-judges;tandem-dr;dr/src/drill/restore.rs dr/src/drill/failover.rs;(replace|in) (bad_deploy|correct_answer|first_answer|judge_restore|judge_restore_around|items_match|is_answer|served_from)( |::|\$);--lib --test drill --features drill-aws"
    "drill-waits;tandem-dr;dr/src/drill/wait.rs;(replace|in) (ask_until|Backoff::(new|next_pause)|Waiter<'_>::until)( |::|\$);--lib --test drill --features drill-aws"
)
# Equivalent mutants, by name (each explained where it lives).
exclude=(
    # reader_pool only sizes the thread pool.
    "(replace|in) reader_pool( |\$)"
    # verify.rs read_result: one batch or none gives the same array either way.
    "replace == with != in read_result"
)
exclude_args=()
for e in "${exclude[@]}"; do exclude_args+=(--exclude-re "$e"); done

wanted=("$@")
failed=0
summary=()
for scope in "${scopes[@]}"; do
    IFS=';' read -r name package files re tests <<<"$scope"
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then
        continue
    fi
    started=$(date +%s)
    printf '\n==> %s: %s (%s)\n' "$name" "$files" "$re" >&2
    file_args=()
    for f in $files; do file_args+=(--file "$f"); done
    status=0
    # A mutant that hangs a test (a worker that never takes a task) is a timeout,
    # which fails the run: four minutes is several times every scope's baseline.
    # shellcheck disable=SC2086 # $tests is a list of cargo test arguments
    cargo mutants --no-shuffle -j 1 --timeout 240 --package "$package" "${file_args[@]}" --re "$re" \
        "${exclude_args[@]}" --output "$out/$name" -- $tests || status=$?
    took=$(($(date +%s) - started))
    line=$(python3 - "$out/$name/mutants.out/outcomes.json" "$name" "$took" <<'EOF'
import json, sys
path, name, took = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = json.load(open(path))
print(f"{name}: {data['total_mutants']} mutants, {data['caught']} caught, {data['missed']} missed, "
      f"{data['timeout']} timeouts, {data['unviable']} unviable, {took // 60} min {took % 60} s")
EOF
)
    summary+=("$line")
    # The verdict is the count, not cargo-mutants' status: it exits 3 when a mutant
    # timed out even if others were missed. 0, 2 and 3 are its verdicts; anything
    # else is a harness failure. A timeout is a mutant the suite did not pass (it
    # hung until cargo-mutants killed it): a catch, slow, listed below.
    case "$status" in 0 | 2 | 3) ;; *) failed=1 ;; esac
    if [ -s "$out/$name/mutants.out/missed.txt" ]; then failed=1; fi
done
printf '\n==> summary\n' >&2
printf '%s\n' "${summary[@]}"
for scope in "${scopes[@]}"; do
    IFS=';' read -r name _ <<<"$scope"
    missed="$out/$name/mutants.out/missed.txt"
    if [ -s "$missed" ]; then
        printf '\nmissed in %s:\n' "$name"
        cat "$missed"
    fi
    timeouts="$out/$name/mutants.out/timeout.txt"
    if [ -s "$timeouts" ]; then
        printf '\ntimeouts (hangs, caught) in %s:\n' "$name"
        cat "$timeouts"
    fi
done
exit "$failed"
