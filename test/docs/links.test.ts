// The documentation is a house of linked pages (README.md the front door, docs/ the reference):
// every relative link in it must lead to a file of this repository, and every `#anchor` to a
// heading of the page it names. A link that leaves the repository (`../shared/...`, `file:`,
// an absolute path) would work on one machine only, so it is refused too.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../../', import.meta.url));
const frontPages = ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md'];
const docPages = readdirSync(path.join(root, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => `docs/${f}`);

/** Markdown without its fenced code blocks and inline code spans, where `[a](b)` is no link. */
function prose(text: string): string {
  return withoutFences(text).replace(/(`+)[\s\S]*?\1/g, '');
}

function withoutFences(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** Every link target of a page: inline links and images, and reference definitions. */
function links(text: string): string[] {
  const body = prose(text);
  const inline = [...body.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!);
  const references = [...body.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$/gm)].map((m) => m[1]!);
  return [...inline, ...references];
}

/** The anchors GitHub gives a page's headings: lowercased, punctuation dropped, spaces to `-`, repeats numbered. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of withoutFences(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = heading!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

/** What is wrong with one link of `page`, or undefined when it leads somewhere in the repository. */
function problem(page: string, target: string): string | undefined {
  if (/^(https?|mailto):/i.test(target)) return undefined;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return `${target}: only http(s) and mailto links may leave the repository`;
  const [file = '', anchor] = target.split('#', 2);
  if (file.startsWith('/')) return `${target}: an absolute path; write it relative to ${page}`;
  const resolved = path.resolve(root, path.dirname(page), decodeURIComponent(file));
  const inside = path.relative(root, resolved);
  if (inside.startsWith('..') || path.isAbsolute(inside)) return `${target}: points outside the repository`;
  if (!existsSync(resolved)) return `${target}: no such file (${inside})`;
  if (anchor && statSync(resolved).isFile() && resolved.endsWith('.md')) {
    if (!anchors(readFileSync(resolved, 'utf8')).has(anchor.toLowerCase())) return `${target}: ${inside} has no heading #${anchor}`;
  }
  return undefined;
}

t.test('the documentation has its pages', async (t) => {
  for (const page of frontPages) t.ok(existsSync(path.join(root, page)), page);
  t.ok(docPages.length > 0, 'docs/*.md');
});

for (const page of [...frontPages, ...docPages].filter((p) => existsSync(path.join(root, p)))) {
  t.test(`every link of ${page} leads to a file of the repository`, async (t) => {
    const text = readFileSync(path.join(root, page), 'utf8');
    const problems = links(text)
      .map((target) => problem(page, target))
      .filter((p) => p !== undefined);
    t.same(problems, [], page);
  });
}

t.test('the link checker itself', async (t) => {
  t.same(links('[a](docs/x.md) `[b](c.md)` ![i](img.png)\n```\n[d](e.md)\n```\n[ref]: ./f.md'), ['docs/x.md', 'img.png', './f.md']);
  t.same(
    [...anchors('# Quick start\n## `taskhost run`: one task\n## Quick start\n')],
    ['quick-start', 'taskhost-run-one-task', 'quick-start-1'],
  );
  t.equal(problem('README.md', '../shared/design.md'), '../shared/design.md: points outside the repository');
  t.equal(problem('docs/error-codes.md', '../README.md'), undefined);
  t.match(problem('README.md', 'file:///etc/passwd'), /may leave the repository/);
  t.match(problem('README.md', '/etc/passwd'), /absolute path/);
  t.match(problem('README.md', 'README.md#no-such-heading'), /has no heading/);
  t.equal(problem('README.md', 'https://example.com/x'), undefined);
});
