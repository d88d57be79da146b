// A benign agent: reads the report it was given a capability for, and writes
// a one-line summary with its write capability. It holds nothing else.
import { countWords } from './words.js';

export default async function main({ caps, input }) {
  const text = await E(caps.report).read();
  const words = countWords(text);
  const summary = `${input.title}: ${words} words`;
  await E(caps.summary).write(`${summary}\n`);
  console.log('wrote summary', summary);
  return { words, summary };
}
