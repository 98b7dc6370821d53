// The run state machine: the seed's orchestration, made correct.
//
//   Prepare -> CollectJobs -> none (a rerun with nothing lost), one child or many?
//     many: SubmitProcure (array of array_size) -> SubmitProcess (N_TO_N on procure)
//           -> RunEgress (N_TO_N on process, waits for the whole egress job)
//     one:  the same three as plain jobs, each depending on the one before
//   -> Watch (names every failed child, bounded) -> succeeded? -> Succeed / RunFailed
//   Any submission or wait that fails -> WatchFailure (names the failed children,
//   terminates whatever still runs) -> RunFailed.
//
// FAILED is never success: the egress job waited on fails if any child fails, and even
// then the watch lambda checks all three stages before the run may succeed. A run of
// 10,000 children makes a few dozen history events (the wait is one .sync task), and
// every state carries small values: the prepare output, three job ids, and the watch
// report, which is bounded (see tandem_aws::batch::WatchReport).

import * as cdk from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';

export const STAGES = ['procure', 'process', 'egress'] as const;
export type Stage = (typeof STAGES)[number];

export interface PipelineStateMachineProps {
  /** The state machine's name. */
  readonly name: string;
  readonly prepare: lambda.IFunction;
  readonly watch: lambda.IFunction;
  readonly queues: Record<Stage, batch.IJobQueue>;
  readonly jobDefinition: batch.IJobDefinition;
  /** The job definition's name (its ARN names a revision; submissions may name either). */
  readonly jobDefinitionName: string;
  readonly timeout: cdk.Duration;
  readonly removalPolicy: cdk.RemovalPolicy;
}

/**
 * Errors of the Batch integration that are worth another try: throttling and 5xx.
 * Step Functions names an integration's error `Batch.` and the AWS SDK for Java's
 * exception: a 5xx is the modelled ServerException, and a 429 (SubmitJob's queue
 * admission limit) is not modelled and arrives as the SDK's base AWSBatchException,
 * which is what public state machines retry Batch throttling on (Netflix Metaflow,
 * metaflow/plugins/aws/step_functions/step_functions.py: "Batch.AWSBatchException").
 * No AWS document names these errors; `Batch.TooManyRequestsException`, which nothing
 * raises as far as anyone has shown, is not listed. Batch's own refusals (a missing
 * queue, a bad definition: Batch.ClientException) are not retried. A 5xx can come after
 * the job was made: a second array then runs the same children again, overwriting the
 * same files whole, and the run follows the one Step Functions kept.
 */
export const BATCH_TRANSIENT = ['Batch.AWSBatchException', 'Batch.ServerException'];

/**
 * BatchSubmitJob with the permissions AWS documents for it
 * (https://docs.aws.amazon.com/step-functions/latest/dg/batch-iam.html): CDK's own
 * statements allow every job definition of the account and, for `.sync`, leave out
 * batch:DescribeJobs and batch:TerminateJob, without which a stopped or timed-out
 * execution cannot stop its job. These are exactly the run state machine's entries of
 * iam/contract.json.
 */
class SubmitJob extends tasks.BatchSubmitJob {
  private readonly waitTimeout?: cdk.Duration;

  constructor(
    scope: Construct,
    id: string,
    props: tasks.BatchSubmitJobProps & { jobDefinitionName: string; waitTimeout?: cdk.Duration },
  ) {
    super(scope, id, props);
    this.waitTimeout = props.waitTimeout;
    const stack = cdk.Stack.of(this);
    const batchArn = (resource: string, resourceName: string) =>
      stack.formatArn({ service: 'batch', resource, resourceName });
    const policies = [
      // A submission is authorized on the queue, the job definition (by name or with
      // a revision) and the job it makes (the reference marks job/* as required).
      new iam.PolicyStatement({
        actions: ['batch:SubmitJob'],
        resources: [
          props.jobQueueArn,
          batchArn('job-definition', props.jobDefinitionName),
          batchArn('job-definition', `${props.jobDefinitionName}:*`),
          batchArn('job', '*'),
        ],
      }),
    ];
    if (props.integrationPattern === sfn.IntegrationPattern.RUN_JOB) {
      policies.push(
        new iam.PolicyStatement({ actions: ['batch:DescribeJobs'], resources: ['*'] }),
        new iam.PolicyStatement({ actions: ['batch:TerminateJob'], resources: [batchArn('job', '*')] }),
        new iam.PolicyStatement({
          actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
          resources: [stack.formatArn({ service: 'events', resource: 'rule', resourceName: 'StepFunctionsGetEventsForBatchJobsRule' })],
        }),
      );
    }
    setTaskPolicies(this, policies);
  }

  /**
   * The state's own TimeoutSeconds for a `.sync` wait. Not `taskTimeout`: for this
   * integration CDK renders that as the Batch job's attempt timeout
   * (Parameters.Timeout), which would replace the job definition's per-child limit.
   */
  override toStateJson(topLevelQueryLanguage?: sfn.QueryLanguage): object {
    const json = super.toStateJson(topLevelQueryLanguage) as Record<string, unknown>;
    if (this.waitTimeout) json.TimeoutSeconds = this.waitTimeout.toSeconds();
    return json;
  }
}

/**
 * Replaces the statements a task state adds to the state machine's role. TaskStateBase
 * reads them when the state machine collects its states' statements, after the
 * task's constructor.
 */
function setTaskPolicies(task: sfn.TaskStateBase, policies: iam.PolicyStatement[]): void {
  (task as unknown as { taskPolicies: iam.PolicyStatement[] }).taskPolicies = policies;
}

/** LambdaInvoke of the unqualified function: CDK's statement also allows every version and alias (ARN:*). */
class InvokeFunction extends tasks.LambdaInvoke {
  constructor(scope: Construct, id: string, props: tasks.LambdaInvokeProps) {
    super(scope, id, props);
    setTaskPolicies(this, [
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [props.lambdaFunction.functionArn] }),
    ]);
  }
}

export class PipelineStateMachine extends Construct {
  readonly machine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: PipelineStateMachineProps) {
    super(scope, id);

    const prepare = new InvokeFunction(this, 'Prepare', {
      comment:
        'Writes the run (manifest and ID file) on the volume from the execution input ({records, ids_per_node, seed, first_id}, all optional), ' +
        'or with {rerun: RUN_ID} finds that run\'s lost children and writes their index map; returns run_id, array_size, job names and index_map.',
      lambdaFunction: props.prepare,
      payloadResponseOnly: true,
      resultSelector: {
        'run_id.$': '$.run_id',
        'array_size.$': '$.array_size',
        'job_names.$': '$.job_names',
        'index_map.$': '$.index_map',
      },
      resultPath: '$.run',
      retryOnServiceExceptions: true,
    });
    const prepareFailed = new sfn.Fail(this, 'PrepareFailed', {
      error: 'TandemPrepareFailed',
      causePath: '$.error.Cause',
    });
    prepare.addCatch(prepareFailed, { resultPath: '$.error' });

    const runFailed = new sfn.Fail(this, 'RunFailed', {
      error: 'TandemRunFailed',
      causePath: '$.watch.summary',
    });
    const watchTask = (name: string, onFailure: boolean) =>
      new InvokeFunction(this, name, {
        comment: onFailure
          ? 'Names the failed children (and a stage that was never submitted), terminates what still runs.'
          : 'Checks all three stages: the run succeeds only if every stage SUCCEEDED.',
        lambdaFunction: props.watch,
        payload: sfn.TaskInput.fromObject({
          run_id: sfn.JsonPath.stringAt('$.run.run_id'),
          jobs: sfn.JsonPath.objectAt('$.jobs'),
          // A rerun's map: the watch names the original children.
          index_map: sfn.JsonPath.stringAt('$.run.index_map'),
          // A stage the state machine has no id for is found by its name; the
          // submission joins the run's job record.
          job_names: sfn.JsonPath.objectAt('$.run.job_names'),
          array_size: sfn.JsonPath.numberAt('$.run.array_size'),
          terminate_unfinished: onFailure,
          ...(onFailure ? { error: sfn.JsonPath.objectAt('$.error') } : {}),
        }),
        payloadResponseOnly: true,
        resultPath: '$.watch',
        retryOnServiceExceptions: true,
      });
    const watchFailure = watchTask('WatchFailure', true);
    watchFailure.next(runFailed);
    // If even the watch cannot run, the run still ends as failed, with its error.
    watchFailure.addCatch(new sfn.Fail(this, 'WatchFailed', { error: 'TandemWatchFailed', causePath: '$.watchError.Cause' }), {
      resultPath: '$.watchError',
    });
    const watchSuccess = watchTask('Watch', false);
    watchSuccess.addCatch(watchFailure, { resultPath: '$.error' });
    const verdict = new sfn.Choice(this, 'Succeeded?')
      .when(sfn.Condition.booleanEquals('$.watch.succeeded', true), new sfn.Succeed(this, 'RunSucceeded'))
      .otherwise(runFailed);
    watchSuccess.next(verdict);

    const submit = (stage: Stage, array: boolean, wait: boolean) => {
      const i = STAGES.indexOf(stage);
      const before = i > 0 ? STAGES[i - 1] : undefined;
      const task = new SubmitJob(this, `${array ? 'Array' : 'Single'}${title(stage)}`, {
        jobDefinitionName: props.jobDefinitionName,
        comment: wait
          ? `Submits ${stage} and waits until the whole job has finished.`
          : `Submits ${stage}${before ? ` (${array ? 'N_TO_N' : 'after'} ${before})` : ''}.`,
        jobName: sfn.JsonPath.stringAt(`$.run.job_names.${stage}`),
        jobQueueArn: props.queues[stage].jobQueueArn,
        jobDefinitionArn: props.jobDefinition.jobDefinitionArn,
        arraySize: array ? sfn.JsonPath.numberAt('$.run.array_size') : undefined,
        dependsOn: before
          ? [{ jobId: sfn.JsonPath.stringAt(`$.jobs.${before}.JobId`), type: array ? 'N_TO_N' : undefined }]
          : undefined,
        containerOverrides: {
          environment: {
            TANDEM_RUN_ID: sfn.JsonPath.stringAt('$.run.run_id'),
            TANDEM_STAGE: stage,
            // Empty for a run's own children; a rerun's map otherwise.
            TANDEM_INDEX_MAP: sfn.JsonPath.stringAt('$.run.index_map'),
          },
        },
        integrationPattern: wait ? sfn.IntegrationPattern.RUN_JOB : sfn.IntegrationPattern.REQUEST_RESPONSE,
        // The wait ends before the execution's own timeout, so its Catch still runs:
        // the watch names what failed and terminates all three stages (a timed-out
        // execution would stop only this job).
        waitTimeout: wait ? waitTimeout(props.timeout) : undefined,
        resultSelector: { 'JobId.$': '$.JobId' },
        resultPath: `$.jobs.${stage}`,
      });
      if (!wait) {
        // Resubmitting after a lost answer could start a stage twice; only what Batch
        // says did not happen (throttling, a server error) is retried.
        task.addRetry({
          errors: BATCH_TRANSIENT,
          interval: cdk.Duration.seconds(2),
          maxAttempts: 6,
          backoffRate: 2,
          maxDelay: cdk.Duration.minutes(1),
          jitterStrategy: sfn.JitterType.FULL,
        });
      }
      task.addCatch(watchFailure, { resultPath: '$.error' });
      return task;
    };
    const branch = (array: boolean) =>
      submit('procure', array, false)
        .next(submit('process', array, false))
        .next(submit('egress', array, true))
        .next(watchSuccess);

    const collectJobs = new sfn.Pass(this, 'CollectJobs', {
      comment: 'The job ids are collected under $.jobs as the stages are submitted.',
      result: sfn.Result.fromObject({}),
      resultPath: '$.jobs',
    });
    const definition = prepare
      .next(collectJobs)
      .next(
        new sfn.Choice(this, 'OneChildOrMany?', {
          comment: 'Batch arrays hold 2 to 10,000 children; one child runs as plain jobs; a rerun with nothing lost submits nothing.',
        })
          .when(
            sfn.Condition.numberEquals('$.run.array_size', 0),
            new sfn.Succeed(this, 'NothingToRerun', { comment: 'Every child of the run is complete.' }),
          )
          .when(sfn.Condition.numberEquals('$.run.array_size', 1), branch(false))
          .otherwise(branch(true)),
      );

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy,
    });
    this.machine = new sfn.StateMachine(this, 'Machine', {
      stateMachineName: props.name,
      comment: 'tandem: prepare, three stages chained N_TO_N on AWS Batch, and a verdict that never calls FAILED a success',
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      timeout: props.timeout,
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
  }
}

/** The egress wait's timeout: the run's less 30 minutes for the wind-down (at least 30 minutes). */
export function waitTimeout(run: cdk.Duration): cdk.Duration {
  return cdk.Duration.minutes(Math.max(30, run.toMinutes() - 30));
}

function title(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
