//! Dynamic config: one JSON document per namespace, addressed by dot paths (BEHAVIOR.md §3).
//!
//! [`Document`] holds the rules every backend shares (merge, secrets, paths) as pure logic;
//! backends store documents and keep secrets encrypted at rest.

mod document;

pub use document::{Document, SECRET_MASK, parts};
