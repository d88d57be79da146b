// A runaway agent: spins forever. Its deadline ends it.
export default function main() {
  for (;;) {
    // burn
  }
}
