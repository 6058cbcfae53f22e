//! The functions whose calls are measured, shared by the `calls` bench
//! (wall-clock) and `benches/call_probe.rs` (instructions per call), so both
//! measure the same code.

#![allow(dead_code)]

use std::hint::black_box;

#[inline(never)]
pub fn plain0() -> u64 {
    black_box(1)
}

#[inline(never)]
pub fn plain2(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[inline(never)]
pub fn plain4(a: u64, b: u64, c: u64, d: u64) -> u64 {
    black_box(a) ^ b ^ c ^ d
}

#[inline(never)]
pub fn plain_str(s: &str) -> usize {
    black_box(s).len()
}

#[webstack::instrument]
#[inline(never)]
pub fn ws0() -> u64 {
    black_box(1)
}

#[webstack::instrument]
#[inline(never)]
pub fn ws2(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[webstack::instrument]
#[inline(never)]
pub fn ws4(a: u64, b: u64, c: u64, d: u64) -> u64 {
    black_box(a) ^ b ^ c ^ d
}

#[webstack::instrument]
#[inline(never)]
pub fn ws_str(s: &str) -> usize {
    black_box(s).len()
}

#[tracing::instrument]
#[inline(never)]
pub fn tracing2(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

pub async fn plain_leaf(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[webstack::instrument]
pub async fn ws_leaf(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[async_backtrace::framed]
pub async fn ab_leaf(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}
