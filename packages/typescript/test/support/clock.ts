// A fake clock for tests: time moves only when the test says so.
export interface FakeClock {
  (): number
  now: number
  advance(ms: number): void
  set(ms: number): void
}

export function fakeClock(start = 1_700_000_000_000): FakeClock {
  const clock = (() => clock.now) as FakeClock
  clock.now = start
  clock.advance = (ms) => {
    clock.now += ms
  }
  clock.set = (ms) => {
    clock.now = ms
  }
  return clock
}
