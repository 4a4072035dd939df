//! The shared fixtures live in `f1_core::testing`, so the phase crates' tests use them too.
#![allow(unused_imports)]

pub use f1_core::testing::*;
