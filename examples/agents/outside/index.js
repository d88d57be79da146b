// Imports a file outside its own folder: refused at load.
import { countWords } from '../benign/words.js';

export default function main() {
  return countWords('a b c');
}
