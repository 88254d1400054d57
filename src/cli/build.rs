//! `sysup build` (being written).
#[derive(clap::Args, Debug)]
pub struct Args {}
pub fn run(_args: Args) -> crate::Result<()> { Err(crate::Error::Refused("not yet".into())) }
