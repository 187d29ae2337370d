//! Hashing for the pool's lookups and its rematch filters: a fixed, seedless hasher for our
//! integer ids, and the SplitMix64 finaliser behind both.
//!
//! `HashMap`'s default hasher draws OS randomness, which the core must not (no randomness it
//! was not handed): the same ids hash the same on every run, so nothing that depends on a
//! hash can make two runs differ. Nothing that shapes an outcome iterates over these maps.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fixed, seedless hasher for our integer ids: `HashMap`'s default hasher draws OS randomness,
/// which the core must not; and this one is faster for 128-bit ids.
#[derive(Default, Clone, Copy)]
pub(in crate::matchmaking) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(29) ^ self.0;
        self.0 = mix64(x);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = mix64(v ^ self.0);
    }
}

/// SplitMix64 finaliser.
pub(super) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub(in crate::matchmaking) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
