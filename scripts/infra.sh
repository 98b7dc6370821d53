#!/usr/bin/env bash
# Checks the AWS CDK app in infra/: type-checks it, runs its assertion tests (jest,
# synthesizing with Lambda bundling skipped), synthesizes every stack for real (the
# Lambda bootstraps built by cargo-lambda, cdk-nag's AwsSolutions pack failing synth on
# any unacknowledged finding) and lints the templates with cfn-lint.
#
# usage: scripts/infra.sh
# env:   TANDEM_LAMBDA_TARGET_DIR  shared with scripts/lambdas.sh, so synth reuses its build
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools.sh
source scripts/tools.sh
export PATH="$(tandem_venv):$PATH"
tandem_node_modules
export CARGO_TARGET_DIR="${TANDEM_LAMBDA_TARGET_DIR:-$HOME/.cache/tandem-lambda-target}"

cd infra
echo "infra: tsc" >&2
npx tsc -p .
echo "infra: jest" >&2
npx jest --ci
echo "infra: cdk synth (bundles the lambdas with cargo-lambda)" >&2
rm -rf cdk.out
npx cdk synth --quiet --ci >&2
echo "infra: cdk synth with the game day on, in prod (its ECS task, VPC, bucket and alarms)" >&2
rm -rf cdk.out.gameday
npx cdk synth --quiet --ci -o cdk.out.gameday -c "tandem:gameDaySchedule=rate(7 days)" -c tandem:removal=prod >&2
echo "infra: cfn-lint" >&2
cfn-lint cdk.out/*.template.json cdk.out.gameday/*.template.json
echo "infra: $(ls cdk.out/*.template.json cdk.out.gameday/*.template.json | wc -l) templates synthesized, cdk-nag and cfn-lint clean" >&2
rm -rf cdk.out.gameday
