import { type Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { STAGES } from '../../infra/config.ts';
import { synthStage } from './synth.ts';

/** Every acknowledgement in the stack: where it sits, which rule (and finding), why. */
function acknowledgementsOf(stack: Stack): { path: string; id: string; reason: string }[] {
  const found: { path: string; id: string; reason: string }[] = [];
  for (const construct of stack.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(z.record(z.string(), z.string()).parse(entry.data))) {
        found.push({ path: construct.node.path, id, reason });
      }
    }
  }
  return found;
}

/**
 * The same checks with every acknowledgement ignored (test-only: cdk-nag consults the private `isAcknowledged`),
 * to tell which acknowledgements still cover a finding.
 */
class AwsSolutionsIgnoringAcknowledgements extends AwsSolutionsChecks {}
Object.defineProperty(AwsSolutionsIgnoringAcknowledgements.prototype, 'isAcknowledged', {
  value: () => false,
});

/** `AwsSolutions::AwsSolutions-IAM5[...]` and `AwsSolutions-IAM5[...]` name the same finding. */
const ruleOf = (id: string): string => id.replace(/^[A-Za-z]+::(?=AwsSolutions-)/, '');

describe.each(STAGES)('cdk-nag AwsSolutions (%s)', (stage) => {
  const { stack } = synthStage(stage, { bundle: false });

  it('reports no unacknowledged error or warning', () => {
    // Act
    const report = new AwsSolutionsChecks().validateScope(stack);

    // Assess
    const findings = report.violations.map(
      (violation) =>
        `${violation.severity} ${violation.ruleName} at ${violation.violatingResources.map((resource) => resource.constructPath ?? resource.resourceLogicalId).join(', ')}`,
    );
    expect(findings).toEqual([]);
  });

  it('acknowledges each finding on its own resource, with a reason, wildcards one finding at a time', () => {
    // Act
    const acknowledgements = acknowledgementsOf(stack).filter(({ id }) => id.includes('AwsSolutions-'));

    // Assess
    expect(acknowledgements.length).toBeGreaterThan(0);
    for (const { path, id, reason } of acknowledgements) {
      expect(path, `${id} is acknowledged on a resource, not on the whole stack`).not.toBe(stack.node.path);
      expect(reason.length, `${id} at ${path} gives a reason`).toBeGreaterThan(40);
      if (/AwsSolutions-IAM[45]/.test(id)) {
        expect(id, 'an IAM acknowledgement names the exact finding (appliesTo)').toMatch(
          /\[(Resource|Action|Policy)::.+\]$/,
        );
      }
    }
  });

  it('acknowledges nothing that no longer fires', () => {
    // Act
    const report = new AwsSolutionsIgnoringAcknowledgements().validateScope(stack);

    // Assess
    const findings = report.violations.flatMap((violation) =>
      violation.violatingResources.map((resource) => ({
        rule: violation.ruleName,
        path: resource.constructPath ?? '',
      })),
    );
    expect(findings.length).toBeGreaterThan(0);
    const stale = acknowledgementsOf(stack)
      .filter(({ id }) => id.includes('AwsSolutions-'))
      .filter(
        ({ path, id }) =>
          !findings.some((finding) => finding.rule === ruleOf(id) && finding.path.startsWith(`${path}/`)),
      )
      .map(({ path, id }) => `${id} at ${path}`);
    expect(stale).toEqual([]);
  });
});
