import { describe, expect, it } from 'vitest';
import { slugCandidates } from '../../functions/api/create-tenant.ts';
import { canonicalJson, requestHash } from '../../functions/api/idempotency.ts';
import { cidrProblem } from '../../schema/api/cidr.ts';
import { deriveSlug, slugProblem } from '../../schema/api/slug.ts';

describe('slug derivation', () => {
  it.each([
    ['Café Zürich', 'cafe-zurich'],
    ['  --Foo__Bar--  ', 'foo-bar'],
    ['ACME Corp.', 'acme-corp'],
    ['Ørsted & Søn', 'rsted-s-n'],
    ['123 Corp', 't-123-corp'],
    [
      'Very Long Company Name International Holdings Limited Partnership',
      'very-long-company-name-international',
    ],
  ])('%s -> %s', (name, slug) => {
    // Act
    const derived = deriveSlug(name);

    // Assess
    expect(derived).toBe(slug);
    expect(slugProblem(derived)).toBeUndefined();
  });

  it('yields a refusable slug when the name gives too little or a reserved word', () => {
    // Act / Assess
    expect(slugProblem(deriveSlug('日本'))).toMatch(/3 to 40/);
    expect(slugProblem(deriveSlug('Admin'))).toMatch(/reserved/);
  });

  it('suggests valid slugs within 40 characters, the plan among them', () => {
    // Prepare
    const long = 'a'.repeat(40);

    // Act
    const candidates = slugCandidates(long, 'enterprise');

    // Assess
    expect(candidates.length).toBeGreaterThanOrEqual(3);
    for (const candidate of candidates) expect(slugProblem(candidate)).toBeUndefined();
    expect(candidates).toContain(`${'a'.repeat(29)}-enterprise`);
    expect(candidates).not.toContain(long);
  });
});

describe('CIDR validation', () => {
  it.each([
    '10.0.0.0/8',
    '203.0.113.7/32',
    '0.0.0.0/0',
    '2001:db8::/32',
    '::/0',
    '::1/128',
    '::ffff:10.0.0.0/104',
    'fe80::/10',
  ])('accepts %s', (cidr) => {
    expect(cidrProblem(cidr)).toBeUndefined();
  });

  it.each([
    ['10.0.0.1/8', /network is 10\.0\.0\.0\/8/],
    ['2001:db8::1/32', /network is 2001:db8::\/32/],
    ['10.0.0.0/33', /prefix length/],
    ['10.0.0.0/08', /prefix length/],
    ['2001:db8::/129', /prefix length/],
    ['010.0.0.0/8', /not an IPv4 or IPv6/],
    ['256.0.0.0/8', /not an IPv4 or IPv6/],
    ['fe80::1%eth0/64', /not an IPv4 or IPv6/],
    ['10.0.0.0', /prefix length, e\.g\./],
    ['example.com/24', /not an IPv4 or IPv6/],
  ])('refuses %s', (cidr, problem) => {
    expect(cidrProblem(cidr)).toMatch(problem);
  });
});

describe('idempotency request hash', () => {
  it('is the same for the same body in another key order, and differs for another body or route', () => {
    // Prepare
    const a = { name: 'x', features: { storage: true, auth: ['password'] } };
    const b = { features: { auth: ['password'], storage: true }, name: 'x' };

    // Act / Assess
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(requestHash('POST /tenants', a)).toBe(requestHash('POST /tenants', b));
    expect(requestHash('POST /tenants', a)).not.toBe(requestHash('POST /tenants', { ...a, name: 'y' }));
    expect(requestHash('POST /tenants', a)).not.toBe(requestHash('POST /other', a));
    // Array order is meaning, not presentation.
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
  });
});
