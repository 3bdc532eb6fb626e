import { describe, expect, it } from 'vitest';
import { faultSweep } from '../../reliability/suite.ts';

describe('every fault point of a provisioning', () => {
  it('ends clean when each AWS call fails in turn (forward, undo) or fails three times transiently; no secret leaks', {
    timeout: 900_000,
  }, async () => {
    // Prepare, Act: the sweep spawns its own sandboxes, records the calls of a reference provisioning and
    // provisions again with each call made to fail.
    const result = await faultSweep();

    // Assess: every problem names the fault point, how it ended and what it left.
    expect(result.problems).toEqual([]);
    expect(result.figures.filter((figure) => !figure.met)).toEqual([]);
  });
});
