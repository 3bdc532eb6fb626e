import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { addStageStack, checkAwsSolutions } from '../app.ts';
import { STAGES, stageConfig } from '../config.ts';
import { PROJECT_ROOT } from '../constructs/function.ts';

/**
 * `npm run synth`: every stage's stack, offline (environment-agnostic, no Docker), into `cdk.out/all`, in one
 * process so that each function is bundled once. The AwsSolutions checks and CDK's CloudFormation validation run
 * as they do on `cdk synth -c stage=<stage>`, and fail this on any unacknowledged finding.
 */
const cdkJson: unknown = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8'));
const context =
  typeof cdkJson === 'object' &&
  cdkJson !== null &&
  'context' in cdkJson &&
  typeof cdkJson.context === 'object'
    ? { ...cdkJson.context }
    : {};

const started = Date.now();
const app = new App({ outdir: join(PROJECT_ROOT, 'cdk.out', 'all'), context });
for (const stage of STAGES) addStageStack(app, stageConfig(stage));
checkAwsSolutions(app);
const assembly = app.synth();
let errors = 0;
for (const stack of assembly.stacks) {
  console.log(
    `${stack.stackName}: ${Object.keys(stack.template.Resources ?? {}).length} resources, ${stack.templateFullPath}`,
  );
  // What `cdk synth` prints from the construct annotations: warnings are shown, errors fail the run.
  for (const message of stack.messages) {
    if (message.level === 'info') continue;
    if (message.level === 'error') errors++;
    console.log(`  ${message.level.toUpperCase()} ${message.id}: ${String(message.entry.data)}`);
  }
}
if (errors > 0) {
  console.error(`${errors} error annotation(s)`);
  process.exitCode = 1;
}
console.log(
  `synthesized ${assembly.stacks.length} stages in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
