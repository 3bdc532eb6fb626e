import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll } from 'vitest';
import { z } from 'zod';
import { type StageName, stageConfig } from '../../infra/config.ts';
import { PROJECT_ROOT } from '../../infra/constructs/function.ts';
import { ControlPlaneStack } from '../../infra/stack.ts';

export interface SynthesizedStage {
  readonly stage: StageName;
  readonly app: App;
  readonly stack: ControlPlaneStack;
  readonly template: Template;
  /** The cloud assembly directory: bundled assets are `asset.<hash>` in it (already gone when not bundled). */
  readonly outdir: string;
}

const cdkJson: unknown = JSON.parse(readFileSync(join(PROJECT_ROOT, 'cdk.json'), 'utf8'));
const cdkContext =
  typeof cdkJson === 'object' &&
  cdkJson !== null &&
  'context' in cdkJson &&
  typeof cdkJson.context === 'object'
    ? { ...cdkJson.context }
    : {};

// The assembly directory of bundled stages, one per test file: CDK caches a bundle per (source, options,
// directory) within a process, so the three stages of a file bundle each function once.
let bundleDir: string | undefined;
afterAll(() => {
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
  bundleDir = undefined;
  for (const key of synthesized.keys()) if (key.endsWith(':true')) synthesized.delete(key);
});

const synthesized = new Map<string, SynthesizedStage>();

/**
 * The stage's stack as `cdk synth -c stage=<stage>` makes it (environment-agnostic, cdk.json's context), once
 * per test file (once per worker in the unit tier, whose files share modules). `bundle: false` skips esbuild
 * (CDK's `aws:cdk:bundling-stacks` context): the template is the same but for asset hashes, a test file that
 * reads no bundle saves about 11 s, and the assembly directory is gone once the template is read.
 */
export function synthStage(stage: StageName, options: { readonly bundle?: boolean } = {}): SynthesizedStage {
  const bundle = options.bundle ?? true;
  const key = `${stage}:${bundle}`;
  const cached = synthesized.get(key);
  if (cached) return cached;
  bundleDir ??= bundle ? mkdtempSync(join(tmpdir(), 'tenant-provisioner-cdk-')) : undefined;
  const outdir = bundle && bundleDir ? bundleDir : mkdtempSync(join(tmpdir(), 'tenant-provisioner-cdk-'));
  const app = new App({
    outdir,
    context: { ...cdkContext, stage, ...(bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
  const config = stageConfig(stage);
  const stack = new ControlPlaneStack(app, `TenantProvisioner-${stage}`, {
    stackName: config.prefix,
    config,
  });
  const result = { stage, app, stack, template: Template.fromStack(stack), outdir };
  if (!bundle) rmSync(outdir, { recursive: true, force: true });
  synthesized.set(key, result);
  return result;
}

const cfnResource = z.object({
  Type: z.string(),
  Properties: z.record(z.string(), z.unknown()).optional(),
  DeletionPolicy: z.string().optional(),
  UpdateReplacePolicy: z.string().optional(),
  DependsOn: z.union([z.string(), z.array(z.string())]).optional(),
});
export type CfnResource = z.infer<typeof cfnResource>;

/** CloudFormation resources of one type, by logical id. */
export function resourcesOf(template: Template, type: string): Record<string, CfnResource> {
  return z.record(z.string(), cfnResource).parse(template.findResources(type));
}

/** One resource by logical id (fails when it is missing). */
export function resourceOf(template: Template, logicalId: string): CfnResource {
  return cfnResource.parse(z.record(z.string(), z.unknown()).parse(template.toJSON().Resources)[logicalId]);
}

/** The one resource of a type (fails when there is none or more than one). */
export function onlyResourceOf(template: Template, type: string): [string, CfnResource] {
  const entries = Object.entries(resourcesOf(template, type));
  if (entries.length !== 1 || !entries[0]) throw new Error(`Expected one ${type}, found ${entries.length}`);
  return entries[0];
}
