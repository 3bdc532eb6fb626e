import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { STATE_MACHINES_DIR, stateMachineFiles } from '../../infra/constructs/provisioning.ts';

const scratch = mkdtempSync(join(tmpdir(), 'state-machine-files-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('stateMachineFiles (infra/constructs/provisioning.ts)', () => {
  it('reads every ASL file of statemachines/ with its substitutions', () => {
    // Act
    const files = stateMachineFiles();

    // Assess
    const provision = files.find((file) => file.name === 'provision-tenant');
    expect(provision?.path).toBe(join(STATE_MACHINES_DIR, 'provision-tenant.asl.json'));
    expect(provision?.substitutionKeys.length).toBeGreaterThan(0);
  });

  it('fails, naming the folder, when the folder cannot be read (a synth would deploy no state machine)', () => {
    // Prepare
    const missing = join(scratch, 'no-such-folder');

    // Act
    const read = () => stateMachineFiles(missing);

    // Assess
    expect(read).toThrow(`Cannot read the state machine folder ${missing}: ENOENT`);
  });

  it('fails when the folder holds no ASL file', () => {
    // Prepare
    writeFileSync(join(scratch, 'provision-tenant.json'), '{}');

    // Act
    const read = () => stateMachineFiles(scratch);

    // Assess
    expect(read).toThrow(`No state machine (*.asl.json) in ${scratch}`);
  });
});
