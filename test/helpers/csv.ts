/** @module A strict RFC 4180 reader for the tests: it fails the test on anything RFC 4180 does not allow. */
import { expect } from "vitest";

/** RFC 4180: fields separated by commas, optionally quoted with "" for a quote; CRLF rows. */
export function parseCsv(text: string): string[][] {
  expect(text.endsWith("\r\n")).toBe(true);
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  while (i < text.length) {
    let value = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        expect(q).toBeGreaterThanOrEqual(0);
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
    } else {
      const end = text.slice(i).search(/,|\r\n/);
      value = text.slice(i, i + end);
      expect(value).not.toMatch(/["\r\n]/);
      i += end;
    }
    row.push(value);
    if (text.startsWith("\r\n", i)) {
      rows.push(row);
      row = [];
      i += 2;
    } else {
      expect(text[i]).toBe(",");
      i++;
    }
  }
  return rows;
}
