use clap::Parser;
use pve_guac_sync::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    pve_guac_sync::memory::tune_allocator();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // One thread: the daemon waits on the network, not the CPU, and a
    // single-threaded runtime wakes its tasks without cross-thread hand-offs
    // (thread switches and futex wake-ups were a third of a steady cycle's
    // profile on the multi-threaded one; README § Performance).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
