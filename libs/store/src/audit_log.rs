//! See the module table in the crate docs.
