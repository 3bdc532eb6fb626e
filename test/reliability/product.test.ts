import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioResult } from '../../reliability/report.ts';
import { SandboxUnderTest } from '../../reliability/sandbox.ts';
import { badInput } from '../../reliability/scenarios/bad-input.ts';
import { crash, crashMidOperation, drift } from '../../reliability/scenarios/crash.ts';
import { duplicates } from '../../reliability/scenarios/duplicates.ts';
import { hygiene } from '../../reliability/scenarios/hygiene.ts';
import { isolation } from '../../reliability/scenarios/isolation.ts';

/** Every figure at its goal; the problems name what was not. */
function expectAtGoal(result: ScenarioResult): void {
  expect(result.problems).toEqual([]);
  expect(result.figures.filter((figure) => !figure.met)).toEqual([]);
  expect(result.figures.length).toBeGreaterThan(0);
}

// One sandbox of the file's own, with the drift reconciler on a 2 s schedule. The scenarios run in order, as a
// file's tests do: the secret hygiene check at the end reads what all of them left in histories, logs, events
// and answers.
describe('the product under duplicates, bad input, break-out attempts, drift and a crash', () => {
  let sut: SandboxUnderTest;
  beforeAll(async () => {
    sut = await SandboxUnderTest.start({ scheduleSeconds: 2 });
  }, 120_000);
  afterAll(async () => {
    await sut?.stop();
  });

  it('makes exactly one tenant and one execution of 50 concurrent duplicate POSTs', {
    timeout: 120_000,
  }, async () => {
    // Prepare, Act
    const result = await duplicates(sut);
    // Assess
    expectAtGoal(result);
  });

  it('answers every fuzzed bad request with a 4xx in the error shape, and makes nothing', {
    timeout: 180_000,
  }, async () => {
    // Prepare, Act
    const result = await badInput(sut);
    // Assess
    expectAtGoal(result);
  });

  it('lets no tenant role reach another tenant, the registry or more privileges', {
    timeout: 120_000,
  }, async () => {
    // Prepare, Act
    const result = await isolation(sut);
    // Assess
    expectAtGoal(result);
  });

  it('repairs lost alarms, markers and role passwords, reports orphans without deleting them, starts a run never started', {
    timeout: 180_000,
  }, async () => {
    // Prepare, Act
    const result = await drift(sut);
    // Assess
    expectAtGoal(result);
  });

  it('finishes or rolls back, without a person, the provisionings a SIGKILL cut short', {
    timeout: 240_000,
  }, async () => {
    // Prepare, Act
    const result = await crash(sut);
    // Assess
    expectAtGoal(result);
  });

  it('finishes, without a person, the suspension, deletion and bulk batch a SIGKILL cut short', {
    timeout: 300_000,
  }, async () => {
    // Prepare, Act
    const result = await crashMidOperation(sut);
    // Assess
    expectAtGoal(result);
  });

  it('leaks no password, invitation token or API token into histories, logs, events or answers', {
    timeout: 120_000,
  }, async () => {
    // Prepare, Act
    const result = await hygiene(sut);
    // Assess
    expectAtGoal(result);
  });
});
