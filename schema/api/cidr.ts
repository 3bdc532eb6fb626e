import { isIPv4, isIPv6 } from 'node:net';

/**
 * Why a CIDR block is refused, or undefined when it is a proper one: an IPv4 or IPv6 network address, a
 * prefix length in range, and no bit set past the prefix (`10.0.0.1/8` is refused with the network address to
 * use instead, since an allow-list entry that reads narrower than it is would mislead whoever audits it).
 */
export function cidrProblem(value: string): string | undefined {
  const slash = value.indexOf('/');
  if (slash === -1)
    return 'A CIDR block is an address and a prefix length, e.g. 203.0.113.0/24 or 2001:db8::/32';
  const address = value.slice(0, slash);
  const prefixText = value.slice(slash + 1);
  let bytes: number[];
  if (isIPv4(address) && !/(^|\.)0\d/.test(address)) bytes = address.split('.').map(Number);
  else if (isIPv6(address) && !address.includes('%')) bytes = ipv6Bytes(address);
  else return `"${address}" is not an IPv4 or IPv6 address`;
  const bits = bytes.length * 8;
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    return `The prefix length is 0 to ${bits}`;
  }
  const prefix = Number(prefixText);
  const network = bytes.map((byte, i) => {
    const kept = Math.min(8, Math.max(0, prefix - i * 8));
    return byte & (0xff << (8 - kept)) & 0xff;
  });
  if (network.some((byte, i) => byte !== bytes[i])) {
    return `Bits are set past the prefix: the network is ${formatAddress(network)}/${prefix}`;
  }
  return undefined;
}

/** The 16 bytes of an IPv6 address already checked by `isIPv6` (`::` and a trailing dotted quad included). */
function ipv6Bytes(address: string): number[] {
  let text = address;
  const tail: number[] = [];
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    tail.push(...dotted[1].split('.').map(Number));
    text = `${text.slice(0, dotted.index)}:0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (part: string) =>
    part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = words.flatMap((word) => [word >> 8, word & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function formatAddress(bytes: readonly number[]): string {
  if (bytes.length === 4) return bytes.join('.');
  const words: string[] = [];
  for (let i = 0; i < bytes.length; i += 2)
    words.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // The longest run of zero words becomes `::`, as RFC 5952 writes it.
  let best = { start: -1, length: 0 };
  for (let i = 0; i < words.length; ) {
    if (words[i] !== '0') {
      i += 1;
      continue;
    }
    let j = i;
    while (words[j] === '0') j += 1;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start === -1) return words.join(':');
  return `${words.slice(0, best.start).join(':')}::${words.slice(best.start + best.length).join(':')}`;
}
