import { describe, expect, it } from 'vitest';
import { hostileTenant } from '../../reliability/scenarios/hostile.ts';

// A sandbox of the scenario's own (it brings a new migration and restarts the sandbox to load it).
describe('a hostile tenant', () => {
  it("plants code everywhere; no path the API runs executes it with the control plane's rights", {
    timeout: 300_000,
  }, async () => {
    // Prepare, Act
    const result = await hostileTenant();
    // Assess
    expect(result.problems).toEqual([]);
    expect(result.figures.filter((figure) => !figure.met)).toEqual([]);
    expect(
      Number(result.figures.find((figure) => figure.figure.startsWith('objects planted'))?.value),
    ).toBeGreaterThan(100);
  });
});
