//! `sysup completions SHELL`: a completion script for bash, zsh, fish,
//! elvish or PowerShell on stdout, generated from the clap definitions
//! (clap_complete), so it always knows every command and flag.

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(a: Args) -> sysup::Result<()> {
    let mut cmd = super::command();
    // Made whole first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "sysup", &mut script);
    super::print_bytes(&script)
}
