//! `loadtest` binary: flags → [`loadtest::run`] → summary on stdout, JSON report on `--report`.
//! Exit status: 0 pass, 1 could not run, 2 violations or errors.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let config = loadtest::Config::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(loadtest::run(config)) {
        Ok(report) => {
            print!("{}", report.summary());
            if report.passed { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(2) }
        }
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
