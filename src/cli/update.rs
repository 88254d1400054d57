//! `sysup update` (being written: issue 6).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> crate::Result<()> {
    Err(crate::Error::Refused("sysup update is not implemented yet".into()))
}
