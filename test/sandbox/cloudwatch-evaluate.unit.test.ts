import { describe, expect, it } from 'vitest';
import { decide, type Slot, type TreatMissingData } from '../../local/aws/services/cloudwatch-evaluate.ts';
import { evaluateExpression, parseExpression } from '../../local/aws/services/cloudwatch-math.ts';

// CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing data", "How alarm state is evaluated when
// data is missing": the two tables, oldest datapoint first; 0 is not breaching, X breaching, - missing.
const MODES: readonly TreatMissingData[] = ['missing', 'ignore', 'breaching', 'notBreaching'];
const RETAIN = 'retain';

const slots = (pattern: string): Slot[] =>
  pattern.split(' ').map((mark, index) => ({
    t: index * 60_000,
    value: mark === '-' ? undefined : mark === 'X' ? 10 : 0,
  }));

const outcomes = (pattern: string, datapointsToAlarm: number) =>
  MODES.map(
    (treatMissingData) =>
      decide(slots(pattern), {
        evaluationPeriods: 3,
        datapointsToAlarm,
        operator: 'GreaterThanThreshold',
        threshold: 5,
        treatMissingData,
      }).state ?? RETAIN,
  );

describe('alarm evaluation with missing data, as the User Guide tables have it', () => {
  it.each([
    ['0 - X - X', ['OK', 'OK', 'OK', 'OK']],
    ['0 - - - -', ['OK', 'OK', 'OK', 'OK']],
    ['- - - - -', ['INSUFFICIENT_DATA', RETAIN, 'ALARM', 'OK']],
    ['0 X X - X', ['ALARM', 'ALARM', 'ALARM', 'ALARM']],
    ['- - - - X', ['INSUFFICIENT_DATA', RETAIN, 'ALARM', 'OK']],
    ['X - - - -', ['ALARM', RETAIN, 'ALARM', 'OK']],
  ])('3 out of 3: %s', (pattern, expected) => {
    expect(outcomes(pattern, 3)).toEqual(expected);
  });

  it.each([
    ['0 - X - X', ['ALARM', 'ALARM', 'ALARM', 'ALARM']],
    ['0 0 X 0 X', ['ALARM', 'ALARM', 'ALARM', 'ALARM']],
    ['0 - X - -', ['OK', 'OK', 'ALARM', 'OK']],
    ['- - - - 0', ['OK', 'OK', 'ALARM', 'OK']],
    ['- - - - X', ['INSUFFICIENT_DATA', RETAIN, 'ALARM', 'OK']],
  ])('2 out of 3: %s', (pattern, expected) => {
    expect(outcomes(pattern, 2)).toEqual(expected);
  });

  it('evaluates the most recent real datapoints when there are enough', () => {
    const decision = decide(slots('X X 0 0 0'), {
      evaluationPeriods: 3,
      datapointsToAlarm: 1,
      operator: 'GreaterThanThreshold',
      threshold: 5,
      treatMissingData: 'breaching',
    });
    expect(decision.state).toBe('OK');
    expect(decision.evaluated.map((point) => point.t)).toEqual([120_000, 180_000, 240_000]);
  });
});

describe('metric math', () => {
  const series = (entries: [number, number][]) => new Map(entries);

  it("evaluates the product's error rate, IF(requests > 0, errors / requests, 0), point by point", () => {
    // Prepare
    const expr = parseExpression('IF(requests > 0, errors / requests, 0)');
    const data = new Map([
      [
        'requests',
        series([
          [0, 100],
          [1, 0],
          [2, 50],
        ]),
      ],
      [
        'errors',
        series([
          [0, 10],
          [1, 0],
          [2, 1],
        ]),
      ],
    ]);

    // Act
    const rate = evaluateExpression(expr, data);

    // Assess
    expect(rate).toEqual(
      series([
        [0, 0.1],
        [1, 0],
        [2, 0.02],
      ]),
    );
  });

  it('keeps precedence, unary minus, powers, comparisons and logic', () => {
    const value = (text: string) => evaluateExpression(parseExpression(text), new Map());
    expect(value('1 + 2 * 3 - 4 / 2')).toBe(5);
    expect(value('(1 + 2) * -3')).toBe(-9);
    expect(value('2 ^ 3 ^ 2')).toBe(512);
    expect(value('1 < 2 AND NOT (3 <= 2) || 0')).toBe(1);
    expect(value('2 == 2 && 1 != 1')).toBe(0);
  });

  it('combines two series on the timestamps both have, and drops a division by zero', () => {
    const result = evaluateExpression(
      parseExpression('a / b'),
      new Map([
        [
          'a',
          series([
            [0, 1],
            [1, 2],
            [2, 3],
          ]),
        ],
        [
          'b',
          series([
            [1, 4],
            [2, 0],
          ]),
        ],
      ]),
    );
    expect(result).toEqual(series([[1, 0.5]]));
  });

  it('refuses what it does not support, by name', () => {
    expect(() => parseExpression('FILL(m1, 0)')).toThrow('The function FILL is not supported by the sandbox');
    expect(() => parseExpression('m1 +')).toThrow('The expression ends where a value was expected.');
    expect(() => parseExpression('m1 % 2')).toThrow("Unsupported character '%'");
    expect(() => parseExpression('IF(m1, 1)')).toThrow("Expected ','");
  });
});
