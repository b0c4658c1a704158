//! `vledger-load`: the load generator (see [`vledger_benches::load`]).

use clap::Parser;
use vledger_benches::load::{run, LoadArgs};

/// The allocator of the `vledger` binary, so that the nodes driven in process allocate as a
/// served node does (the writer frees on its thread what the checking threads allocated).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    run(LoadArgs::parse())
}
