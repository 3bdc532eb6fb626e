// XML out, as the XML protocols (S3's REST-XML, CloudWatch's query protocol) write it.

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is escaped
const XML_SPECIAL = /[&<>"']|[\u0000-\u0008\u000b-\u001f\u007f]/g;

/** Escapes text for XML; control characters become character references so that `\r` survives parsing. */
export function escapeXml(text: string): string {
  return text.replace(XML_SPECIAL, (c) => XML_ESCAPES[c] ?? `&#${c.charCodeAt(0)};`);
}

/** `<name>text</name>`, or nothing when the value is absent. */
export function leaf(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** `<name>…</name>` around children that are already XML. */
export function node(name: string, ...children: string[]): string {
  return `<${name}>${children.join('')}</${name}>`;
}
