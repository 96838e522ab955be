import { readFileSync, writeFileSync } from 'node:fs';
import { OPTIONS_BEGIN, OPTIONS_END, optionsMarkdown } from '../src/config/reference.ts';

/** Rewrites README.md's generated sections from the code (npm run docs). */
const path = new URL('../README.md', import.meta.url);
const readme = readFileSync(path, 'utf8');
const start = readme.indexOf(OPTIONS_BEGIN);
const end = readme.indexOf(OPTIONS_END);
if (start < 0 || end < start) throw new Error('README.md lacks the options markers');
writeFileSync(path, `${readme.slice(0, start + OPTIONS_BEGIN.length)}\n${optionsMarkdown()}\n${readme.slice(end)}`);
process.stderr.write('README.md: configuration reference updated\n');
