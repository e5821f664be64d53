//! `styleforge`: restyle photos from the command line, manage the model library, benchmark.

mod avatar;
mod bench;
mod models;
mod serve;
mod stylize;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc keeps freed pages mapped for reuse: the engine allocates and drops tensors of tens of
/// megabytes per layer, which the system allocator returns to the kernel and faults in again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Image style transfer: stylize photos with any method, train new styles, serve them over HTTP,
/// manage the model library, benchmark.
#[derive(Parser, Debug)]
#[command(name = "styleforge", version, about, long_about = None, after_help = stylize::methods_overview())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Restyle one image, several, or a folder, with any method (see below).
    #[command(after_help = stylize::methods_overview())]
    Stylize(stylize::Args),
    /// Make a square avatar: crop the photo around its face (the built-in detector, or --box)
    /// and stylise it with a filter, a model, a painting or an image.
    Avatar(avatar::Args),
    /// List, import, download and remove models.
    Models {
        #[command(subcommand)]
        command: models::Command,
    },
    /// Train new models: fast styles (a style image and photos), CycleGANs (two unpaired
    /// folders), DCGANs (one folder); export them into the library.
    Train {
        #[command(subcommand)]
        command: train::Command,
    },
    /// Sample new images (or a latent interpolation strip) from a DCGAN generator.
    Generate(train::GenerateArgs),
    /// Time the networks at several sizes and print a table.
    Bench(bench::Args),
    /// Run the HTTP service (REST API, jobs, storage, API keys).
    Serve(serve::Args),
    /// Run job workers against a shared database and blob store (no HTTP listener).
    Worker(serve::WorkerArgs),
    /// Create, list and revoke API keys for the service.
    Keys {
        #[command(subcommand)]
        command: serve::KeysCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STYLEFORGE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let compute = matches!(cli.command, Command::Stylize(_) | Command::Avatar(_) | Command::Train { .. } | Command::Generate(_) | Command::Bench(_));
    let run = move || match cli.command {
        Command::Stylize(a) => stylize::run(a),
        Command::Avatar(a) => avatar::run(a),
        Command::Models { command } => models::run(command),
        Command::Train { command } => train::run(command),
        Command::Generate(a) => train::generate(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Worker(a) => serve::worker(a),
        Command::Keys { command } => serve::keys(command),
    };
    let result = if compute {
        keep_freed_memory();
        styleforge_core::device::on_compute_threads(run)
    } else {
        run()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`: the 16th option, v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For the one-shot compute commands: mimalloc keeps freed memory mapped instead of returning it
/// to the kernel after 10 ms, so a Gatys or training step reuses the previous step's pages
/// instead of faulting in (and having the kernel zero) 130k-160k fresh ones. The service keeps
/// the default, which gives memory back between jobs.
fn keep_freed_memory() {
    // SAFETY: `mi_option_set` only stores an option value; -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
