//! `sysup publish` (being written: issue 6).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> crate::Result<()> {
    Err(crate::Error::Refused("sysup publish is not implemented yet".into()))
}
