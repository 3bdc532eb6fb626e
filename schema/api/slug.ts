/**
 * Tenant slugs: the human handle of a tenant (a subdomain, a CLI argument). No resource name derives from a
 * slug (those derive from the generated tenant id), but a slug ends up in URLs and DNS labels, so it is kept
 * to a DNS-safe shape: lowercase ASCII letters, digits and single hyphens, starting with a letter and ending
 * with a letter or digit, 3 to 40 characters.
 */
export const SLUG_PATTERN = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){2,39}$/;
export const SLUG_MIN_LENGTH = 3;
export const SLUG_MAX_LENGTH = 40;

/**
 * Slugs no tenant may have: names of the product's own endpoints and hosts, of PostgreSQL's own databases
 * and roles, and words that would let a tenant pass for the operator.
 */
export const RESERVED_SLUGS: ReadonlySet<string> = new Set([
  'admin',
  'administrator',
  'api',
  'app',
  'auth',
  'billing',
  'control-plane',
  'dashboard',
  'default',
  'docs',
  'help',
  'internal',
  'login',
  'mail',
  'null',
  'operator',
  'postgres',
  'public',
  'root',
  'security',
  'sso',
  'status',
  'support',
  'system',
  'template0',
  'template1',
  'tenant',
  'tenants',
  'undefined',
  'www',
]);

/** Why a slug is refused, or undefined when it is acceptable. */
export function slugProblem(slug: string): string | undefined {
  if (slug.length < SLUG_MIN_LENGTH || slug.length > SLUG_MAX_LENGTH) {
    return `A slug has ${SLUG_MIN_LENGTH} to ${SLUG_MAX_LENGTH} characters`;
  }
  if (!SLUG_PATTERN.test(slug)) {
    return 'A slug has lowercase letters, digits and single hyphens, starts with a letter and ends with a letter or digit';
  }
  if (RESERVED_SLUGS.has(slug)) return `The slug "${slug}" is reserved`;
  return undefined;
}

/**
 * The slug a name suggests: diacritics removed (`Café Zürich` → `cafe-zurich`), lowercase ASCII, every run of
 * other characters one hyphen, no hyphen at either end, cut to 40 characters at a hyphen where possible.
 * A name starting with a digit gets the prefix `t-`. The result may still be refused by {@link slugProblem}
 * (too short, reserved): the caller then has to give a slug.
 */
export function deriveSlug(name: string): string {
  let slug = name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (/^[0-9]/.test(slug)) slug = `t-${slug}`;
  return truncateSlug(slug, SLUG_MAX_LENGTH);
}

/** A slug cut to `max` characters, at the last hyphen when one is near, never ending with a hyphen. */
export function truncateSlug(slug: string, max: number): string {
  if (slug.length <= max) return slug;
  let cut = slug.slice(0, max);
  const hyphen = cut.lastIndexOf('-');
  if (hyphen >= max - 10 && hyphen >= SLUG_MIN_LENGTH) cut = cut.slice(0, hyphen);
  return cut.replace(/-+$/, '');
}
