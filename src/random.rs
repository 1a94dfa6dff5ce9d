//! The crate's one source of randomness: retry jitter, lease ids, incarnations and content ids.
//!
//! Normally each thread's own generator. The deterministic simulator runs every processor on
//! one thread and seeds that thread's generator, so that a seed replays a run event for event.

use std::cell::RefCell;
use std::ops::RangeInclusive;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// From now on this thread draws from `seed` (the simulator; never called in production).
pub fn seed_thread(seed: u64) {
    SEEDED.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

fn draw<T>(f: impl FnOnce(&mut dyn rand::RngCore) -> T) -> T {
    SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(rng) => f(rng),
        None => f(&mut rand::thread_rng()),
    })
}

pub fn u64() -> u64 {
    draw(|rng| rng.next_u64())
}

pub fn in_range(range: RangeInclusive<u64>) -> u64 {
    draw(|rng| rng.gen_range(range))
}

/// A duration in `0..=max`, to the microsecond.
pub fn up_to(max: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_micros(in_range(0..=max.as_micros() as u64))
}

/// Between half of `interval` and all of it, at random: periodic requests of processors
/// that started together drift apart within a few rounds instead of reaching one blob or
/// partition in the same instant, and no interval grows past what the liveness and lease
/// rules assume.
pub fn shortened(interval: std::time::Duration) -> std::time::Duration {
    interval / 2 + up_to(interval / 2)
}

/// A version 4 UUID.
pub fn uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    draw(|rng| rng.fill_bytes(&mut bytes));
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_thread_repeats_its_draws() {
        let run = || {
            seed_thread(7);
            (u64(), in_range(10..=20), uuid())
        };
        let first = std::thread::spawn(run).join().unwrap();
        let second = std::thread::spawn(run).join().unwrap();
        assert_eq!(first, second);
        assert_eq!(first.2.get_version_num(), 4);
        let d = std::time::Duration::from_secs(2);
        assert!((0..100).all(|_| (d / 2..=d).contains(&shortened(d))));
        assert!(up_to(std::time::Duration::ZERO).is_zero());
        // An unseeded thread is not tied to the seed.
        let free = std::thread::spawn(|| (u64(), u64())).join().unwrap();
        assert_ne!(free.0, first.0);
    }
}
