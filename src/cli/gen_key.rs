//! `gen-key`: print a new random Fernet key (for the `encryption` keys of the
//! configuration, or `encrypt --key-file`). Needs no configuration.

use crate::crypto;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<i32> {
    // The key must reach the operator: this is its one way out.
    println!("{}", crypto::generate_key().expose());
    Ok(0)
}
