//! The formats that leave a node and that anyone can check without it: the signed command
//! (a DSSE envelope over a JSON payload), the canonical bytes of a log entry, and the receipts
//! a node signs per batch. Pure: no storage, no network, no clock.

pub mod entry;
pub mod envelope;
pub mod http;
pub mod receipt;
