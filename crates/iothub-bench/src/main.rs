//! The `iothub-bench` command: parses the arguments, builds a multi-thread Tokio runtime, runs
//! the scenario, then prints the human summary and one JSON line to stdout.
//!
//! Progress and errors go to stderr, so `iothub-bench ... | tail -n 1` is the JSON result.

use std::process::ExitCode;

use clap::Parser;
use iothub_bench::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    iothub_bench::wire::set_persistent(cli.command.target().persistent);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if cli.threads > 0 {
        builder.worker_threads(cli.threads);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("iothub-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(iothub_bench::run(&cli.command, !cli.quiet)) {
        Ok(report) => {
            print!("{}", report.summary());
            println!("{}", report.json_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iothub-bench {}: {e}", cli.command.scenario());
            ExitCode::FAILURE
        }
    }
}
